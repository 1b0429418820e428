import { createRequire } from 'node:module';
import path from 'node:path';
import grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { RpcCode, RpcError } from '../../errors/errors.js';

/*
 * The client half of gRPC server reflection (grpc.reflection.v1), as grpcurl uses it: ask a
 * server for the file declaring a service and get its file descriptors, so a service declared
 * in a .proto can be called without the .proto. The messages come from @grpc/reflection's own
 * copy of reflection.proto.
 */

const require = createRequire(import.meta.url);
const REFLECTION_PROTO = path.join(path.dirname(require.resolve('@grpc/reflection/package.json')), 'build/proto/grpc/reflection/v1/reflection.proto');
const root = protobuf.loadSync(REFLECTION_PROTO);
const Request = root.lookupType('grpc.reflection.v1.ServerReflectionRequest');
const Response = root.lookupType('grpc.reflection.v1.ServerReflectionResponse');
const FileSet = protobuf.loadSync(require.resolve('protobufjs/google/protobuf/descriptor.proto')).lookupType('google.protobuf.FileDescriptorSet');
const PATH = '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo';

interface ReflectionAnswer {
  fileDescriptorResponse?: { fileDescriptorProto?: Uint8Array[] };
  errorResponse?: { errorCode?: number; errorMessage?: string };
}

/** Where and how to reach the server, and how long to wait for its answer. */
export interface ReflectionTarget {
  readonly address: string;
  readonly credentials: grpc.ChannelCredentials;
  readonly timeoutMs: number;
}

/**
 * The serialized `google.protobuf.FileDescriptorSet` of the file that declares `symbol` (a
 * service's full name) and the files it imports, from the server's reflection service.
 * Rejects with an RpcError: NOT_FOUND when the server does not know the symbol, UNIMPLEMENTED
 * when it serves no reflection, or the status of the failed call.
 */
export async function fetchDescriptorSet(target: ReflectionTarget, symbol: string): Promise<Uint8Array> {
  const client = new grpc.Client(target.address, target.credentials);
  try {
    const answer = await new Promise<ReflectionAnswer>((resolve, reject) => {
      const call = client.makeBidiStreamRequest(
        PATH,
        (value: object) => Buffer.from(Request.encode(Request.fromObject(value)).finish()),
        (bytes: Buffer) => Response.toObject(Response.decode(bytes)) as ReflectionAnswer,
        new grpc.Metadata(),
        { deadline: Date.now() + target.timeoutMs },
      );
      call.once('data', (value: ReflectionAnswer) => {
        resolve(value);
        call.cancel();
      });
      call.once('error', (error: grpc.ServiceError) => reject(new RpcError(error.code as number as RpcCode, error.details || error.message)));
      call.write({ fileContainingSymbol: symbol });
      call.end();
    });
    if (answer.errorResponse !== undefined) {
      throw new RpcError(
        RpcCode.NOT_FOUND,
        `server reflection at ${target.address}: ${answer.errorResponse.errorMessage ?? `error ${answer.errorResponse.errorCode}`}`,
      );
    }
    const files = answer.fileDescriptorResponse?.fileDescriptorProto ?? [];
    // A FileDescriptorSet is `repeated FileDescriptorProto file = 1`: the files as they came.
    const set = FileSet.fromObject({});
    (set as unknown as { file: unknown[] }).file = files.map((bytes) => FileSet.lookupType('FileDescriptorProto').decode(bytes));
    return FileSet.encode(set).finish();
  } finally {
    client.close();
  }
}
