import { RpcCode, RpcError } from '../errors/errors.js';
import { COST_ARRAY, COST_DOUBLE, COST_OBJECT, COST_SCALAR, COST_STRING, DecodeCost, DEFAULT_DECODE_LIMITS, type DecodeLimits } from './decode-limits.js';

/**
 * Prices a JSON text before JSON.parse (which is recursive and builds everything at once) sees
 * it: nesting depth, values, keys per object and estimated decoded bytes, within `limits`.
 * Brackets inside strings (escapes included) do not count. One pass, no allocation. Throws
 * INVALID_ARGUMENT for too deep a text, RESOURCE_EXHAUSTED for a limit of size; returns the
 * estimate. Malformed JSON is left for JSON.parse to describe.
 *
 * @param wireBytes the payload's size on the wire (the text's UTF-8 length)
 */
export function checkJson(text: string, wireBytes: number, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): number {
  const cost = new DecodeCost(limits, wireBytes);
  /** Keys seen in each open container, innermost last; -1 for an array. */
  const keys: number[] = [];
  let stringStart = -1;
  let inNumber = false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (stringStart >= 0) {
      if (code === 0x5c) i++;
      else if (code === 0x22) {
        cost.add(COST_STRING + (i - stringStart));
        stringStart = -1;
      }
      continue;
    }
    const numeric = (code >= 0x30 && code <= 0x39) || code === 0x2d || code === 0x2b || code === 0x2e || code === 0x45 || code === 0x65;
    if (numeric) {
      if (!inNumber) cost.add(COST_DOUBLE);
      inNumber = true;
      continue;
    }
    inNumber = false;
    switch (code) {
      case 0x22: // "
        stringStart = i + 1;
        break;
      case 0x7b: // {
      case 0x5b: // [
        if (keys.length >= limits.maxDepth) {
          throw new RpcError(RpcCode.INVALID_ARGUMENT, `JSON nested deeper than ${limits.maxDepth} levels (at character ${i}; decode limit maxDepth)`);
        }
        cost.add(code === 0x7b ? COST_OBJECT : COST_ARRAY);
        keys.push(code === 0x7b ? 0 : -1);
        break;
      case 0x7d: // }
      case 0x5d: // ]
        keys.pop();
        break;
      case 0x3a: {
        // ':' ends a key: count it against the innermost object.
        const top = keys.length - 1;
        if (top >= 0 && keys[top]! >= 0) cost.mapKeys((keys[top] = keys[top]! + 1));
        break;
      }
      case 0x74: // true
      case 0x66: // false
      case 0x6e: // null
        cost.add(COST_SCALAR);
        i += code === 0x66 ? 4 : 3;
        break;
      default:
        break;
    }
  }
  return cost.bytes;
}
