/**
 * The variable `name` without the whitespace around it; undefined when unset, empty or blank.
 * Why trimmed: values written to files and secrets (a Kubernetes secret, `echo token > file`)
 * often end in a newline no one sees, and a token with one never matches the same token
 * without it. No SHUTTLE_* variable has meaningful whitespace at either end.
 */
export function envValue(env: Readonly<Record<string, string | undefined>>, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}
