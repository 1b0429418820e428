/**
 * The dashboard's admission section (see dashboard.ts): a piece of the page's script, spliced
 * into its closure so it shares the helpers there (`$`, `text`, `el`, `chart`, `rate`, `fixed`,
 * `KEEP`). It defines `renderAdmission(admission, seconds)`, called on every poll with the
 * `/admission` snapshot (null hides the section): the running and waiting counts and the
 * admitted and refused totals with their rates; tables by priority, of the top tenants (most
 * waiting, then most admitted) and of refusals by reason; and charts of the calls waiting and
 * of the mean wait of the calls admitted in each poll interval, one line per priority.
 */
export const DASHBOARD_ADMISSION_SCRIPT = `
  const TOP_TENANTS = 5;
  const PRIORITY_NAMES = { 0: 'low', 1: 'normal', 5: 'high' };
  const PRIORITY_COLORS = ['#6b7280', '#3b82f6', '#0891b2', '#0f766e', '#65a30d', '#d97706', '#ea580c', '#dc2626', '#be185d', '#7c3aed'];
  const admissionHistory = { queued: {}, wait: {} };
  let previousAdmission;
  const sumOf = (record) => Object.values(record).reduce((total, value) => total + (typeof value === 'number' ? value : value.calls), 0);
  const meanWait = (waited) => waited && waited.calls > 0 ? fixed((waited.waitSeconds / waited.calls) * 1000) + ' ms' : '-';
  const priorityLabel = (priority) => priority + (PRIORITY_NAMES[priority] ? ' (' + PRIORITY_NAMES[priority] + ')' : '');
  const byNumber = (keys) => [...keys].sort((a, b) => Number(b) - Number(a));

  const renderAdmission = (admission, seconds) => {
    const section = $('admission');
    section.hidden = admission === null;
    if (admission === null) return;
    const admitted = sumOf(admission.admittedByPriority);
    const refused = sumOf(admission.refusedByReason);
    text('admission-running', String(admission.running));
    text('admission-queued', String(sumOf(admission.queuedByPriority)));
    text('admission-admitted', String(admitted));
    text('admission-refused', String(refused));
    const before = previousAdmission;
    if (before && seconds > 0) {
      text('admission-admitted-rate', fixed(rate(admitted, sumOf(before.admittedByPriority), seconds)));
      text('admission-refused-rate', fixed(rate(refused, sumOf(before.refusedByReason), seconds)));
    }

    const priorities = byNumber(new Set([...Object.keys(admission.queuedByPriority), ...Object.keys(admission.admittedByPriority), ...Object.keys(admission.refusedByPriority)]));
    const priorityRows = $('admission-priorities');
    priorityRows.replaceChildren();
    for (const priority of priorities) {
      const row = el('tr');
      row.dataset.priority = priority;
      const waited = admission.admittedByPriority[priority];
      row.append(el('td', priorityLabel(priority)), el('td', String(admission.queuedByPriority[priority] || 0), 'num queued'), el('td', String(waited ? waited.calls : 0), 'num admitted'));
      row.append(el('td', meanWait(waited), 'num wait'), el('td', String(admission.refusedByPriority[priority] || 0), 'num refused'));
      priorityRows.appendChild(row);
    }

    const tenants = [...new Set([...Object.keys(admission.queuedByTenant), ...Object.keys(admission.admittedByTenant), ...Object.keys(admission.refusedByTenant)])];
    const waitingOf = (tenant) => admission.queuedByTenant[tenant] || 0;
    const admittedOf = (tenant) => (admission.admittedByTenant[tenant] || { calls: 0 }).calls;
    tenants.sort((a, b) => waitingOf(b) - waitingOf(a) || admittedOf(b) - admittedOf(a) || (a < b ? -1 : 1));
    const tenantRows = $('admission-tenants');
    tenantRows.replaceChildren();
    for (const tenant of tenants.slice(0, TOP_TENANTS)) {
      const row = el('tr');
      row.dataset.tenant = tenant;
      row.append(el('td', tenant), el('td', String(waitingOf(tenant)), 'num queued'), el('td', String(admittedOf(tenant)), 'num admitted'));
      row.append(el('td', meanWait(admission.admittedByTenant[tenant]), 'num wait'), el('td', String(admission.refusedByTenant[tenant] || 0), 'num refused'));
      tenantRows.appendChild(row);
    }
    text('admission-tenant-count', tenants.length > TOP_TENANTS ? 'top ' + TOP_TENANTS + ' of ' + tenants.length : String(tenants.length));

    const reasonRows = $('admission-reasons');
    reasonRows.replaceChildren();
    for (const [reason, count] of Object.entries(admission.refusedByReason).sort((a, b) => b[1] - a[1])) {
      const row = el('tr');
      row.dataset.reason = reason;
      const earlier = before && before.refusedByReason[reason] || 0;
      row.append(el('td', reason), el('td', String(count), 'num refused'), el('td', before && seconds > 0 ? fixed(rate(count, earlier, seconds)) + '/s' : '-', 'num rate'));
      reasonRows.appendChild(row);
    }

    if (before && seconds > 0) {
      for (const priority of priorities) {
        const now = admission.admittedByPriority[priority] || { calls: 0, waitSeconds: 0 };
        const then = before.admittedByPriority[priority] || { calls: 0, waitSeconds: 0 };
        const calls = now.calls - then.calls;
        const push = (series, value) => { series[priority] = (series[priority] || []).concat(value).slice(-KEEP); };
        push(admissionHistory.queued, admission.queuedByPriority[priority] || 0);
        push(admissionHistory.wait, calls > 0 ? ((now.waitSeconds - then.waitSeconds) / calls) * 1000 : 0);
      }
      const lines = (series) => byNumber(Object.keys(series)).map((priority) => ({ label: priorityLabel(priority), values: series[priority], color: PRIORITY_COLORS[Number(priority)] || '#1d2430' }));
      chart('queue-chart', lines(admissionHistory.queued), 'calls');
      chart('wait-chart', lines(admissionHistory.wait), 'ms');
    }
    previousAdmission = admission;
  };
`;
