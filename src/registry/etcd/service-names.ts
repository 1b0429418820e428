import { Range, type Etcd3, type IRangeResponse } from 'etcd3';
import { readPage } from './prefix-mirror.js';

/**
 * The service folders under `root` (`{prefix}/services/`), still URI-encoded, in key order.
 * Keys only, in pages read at one revision, and once a page ends inside a folder the next
 * starts past that folder: a service with 100,000 records costs one page, not an answer
 * holding every key (which passes the client's 4 MiB message limit and fails `shuttle ls`
 * outright). A page refused as too large (a key can be as long as etcd's request limit) is
 * read again in halves, down to one key. At most `maxFolders` folders are returned;
 * `truncated` says when there were more.
 */
export async function serviceFolders(client: Etcd3, root: string, maxFolders: number): Promise<{ folders: string[]; truncated: boolean }> {
  const end = Range.prefix(root).end;
  const rootBytes = Buffer.byteLength(root);
  const folders: string[] = [];
  let from = Buffer.from(root);
  let revision: string | undefined;
  let page = PAGE_KEYS;
  for (;;) {
    let response: IRangeResponse;
    ({ response, page } = await readPage(page, (keys) =>
      client.kv.range({ key: from, range_end: end, limit: keys, keys_only: true, ...(revision === undefined ? {} : { revision }) }),
    ));
    revision ??= response.header.revision;
    // Halved for a page of long keys; the next ones are likely short again.
    page = Math.min(PAGE_KEYS, page * 2);
    let last: Buffer | undefined;
    for (const kv of response.kvs) {
      const slash = kv.key.indexOf(SLASH, rootBytes);
      const folder = kv.key.subarray(rootBytes, slash === -1 ? kv.key.length : slash).toString('utf8');
      if (folders.at(-1) !== folder) {
        if (folders.length === maxFolders) return { folders, truncated: true };
        folders.push(folder);
      }
      last = kv.key;
    }
    if (!response.more || last === undefined) return { folders, truncated: false };
    // Past the last key's folder: "{root}{folder}0" follows every "{root}{folder}/…" ('0' is '/' + 1).
    const slash = last.indexOf(SLASH, rootBytes);
    from = slash === -1 ? Buffer.concat([last, ZERO]) : Buffer.concat([last.subarray(0, slash), AFTER_SLASH]);
  }
}

const PAGE_KEYS = 1000;
const SLASH = 0x2f;
const ZERO = Buffer.from([0]);
const AFTER_SLASH = Buffer.from([SLASH + 1]);
