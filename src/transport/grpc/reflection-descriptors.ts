import { createRequire } from 'node:module';
import type { PackageDefinition } from '@grpc/proto-loader';
import protobuf from 'protobufjs';

/*
 * @grpc/proto-loader builds the file descriptors that reflection serves with protobufjs, which
 * names the entry message of a map field after the field (`Statuses` for `map<…> statuses`)
 * where protoc and every strict reader (Python's and Go's descriptor pools) require
 * `StatusesEntry`; such a file is refused whole ("map_entry should not be set explicitly"),
 * so a client cannot call anything it declares. grpc.health.v1 itself has one (HealthList-
 * Response.statuses). The descriptors are corrected here, once, before they are served.
 */

const require = createRequire(import.meta.url);
const FILE = protobuf.loadSync(require.resolve('protobufjs/google/protobuf/descriptor.proto')).lookupType('google.protobuf.FileDescriptorProto');

/** The parts of a DescriptorProto this correction reads and writes. */
interface MessageShape {
  field?: { name: string; type?: number | string; typeName?: string }[];
  nestedType?: (MessageShape & { name: string; options?: { mapEntry?: boolean } })[];
}

/**
 * A copy of `definition` whose file descriptors name map entries as protoc does
 * (`<FieldInCamelCase>Entry`). Everything else is passed through unchanged.
 */
export function withProtocMapEntries(definition: PackageDefinition): PackageDefinition {
  const fixed = new Map<Buffer, Buffer>();
  const fix = (bytes: Buffer): Buffer => {
    let out = fixed.get(bytes);
    if (out === undefined) {
      const file = FILE.toObject(FILE.decode(bytes), { enums: Number }) as { messageType?: MessageShape[] };
      for (const message of file.messageType ?? []) renameMapEntries(message);
      out = Buffer.from(FILE.encode(FILE.fromObject(file)).finish());
      fixed.set(bytes, out);
    }
    return out;
  };
  const copy: PackageDefinition = {};
  for (const [name, entry] of Object.entries(definition)) {
    // Messages and enums carry their files; services (objects of methods) do not.
    const files = (entry as { fileDescriptorProtos?: unknown }).fileDescriptorProtos;
    copy[name] = Array.isArray(files) ? ({ ...entry, fileDescriptorProtos: (files as Buffer[]).map(fix) } as typeof entry) : entry;
  }
  return copy;
}

function renameMapEntries(message: MessageShape): void {
  for (const field of message.field ?? []) {
    const typeName = field.typeName ?? '';
    const entry = message.nestedType?.find((nested) => nested.options?.mapEntry === true && (typeName === nested.name || typeName.endsWith(`.${nested.name}`)));
    if (entry === undefined) continue;
    const name = `${field.name.replace(/(?:^|_)([a-z0-9])/g, (_match, letter: string) => letter.toUpperCase())}Entry`;
    if (entry.name === name) continue;
    field.typeName = typeName.slice(0, typeName.length - entry.name.length) + name;
    entry.name = name;
  }
  for (const nested of message.nestedType ?? []) renameMapEntries(nested);
}
