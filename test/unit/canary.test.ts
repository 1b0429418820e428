import 'reflect-metadata';
import { describe, it, expect } from 'vitest';
function Mark(): MethodDecorator { return () => {}; }
class Req { a = 1; }
class S { @Mark() m(r: Req, n: number): string { return String(r) + n; } }
describe('canary', () => { it('metadata', () => {
  expect(Reflect.getMetadata('design:paramtypes', S.prototype, 'm')).toEqual([Req, Number]);
}); });
