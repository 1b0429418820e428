/**
 * shuttle-rpc/spi: the extension points, for authors of serializers, registries, load
 * balancers and transports. Application code needs only the main entry point.
 */
export {
  SerializerId,
  SerializerSet,
  defaultSerializers,
  type PayloadTarget,
  type Serializer,
} from '../serializer/serializer.js';
export { createMsgpackSerializer } from '../serializer/msgpack.js';
export { createJsonSerializer } from '../serializer/json.js';
export { createProtobufSerializer, type ProtobufSerializerOptions } from '../serializer/protobuf.js';
export {
  DirectRegistry,
  MemoryRegistry,
  instanceKey,
  matchesQuery,
  resolveRegistry,
  type InstancesListener,
  type MethodDescriptor,
  type Registry,
  type ServiceInstance,
  type ServiceQuery,
  type Subscription,
} from '../registry/registry.js';
export { createLoadBalancer, type LoadBalancer, type ProviderView } from '../loadbalance/loadbalance.js';
export {
  DEFAULT_MAX_FRAME_BYTES,
  FrameFlag,
  FrameType,
  HEADER_BYTES,
  MAGIC,
  PROTOCOL_VERSION,
  encodeFrame,
  readHeader,
  writeHeader,
  type Frame,
} from '../transport/frame.js';
export { FrameDecoder } from '../transport/decoder.js';
export { decodeRequestHead, encodeMeta, encodeRoute, type Metadata, type RequestHead } from '../transport/envelope.js';
export { encodeErrorFrame, decodeWireError } from '../transport/tcp/wire-error.js';
export { TIMEOUT_META, type ClientConnection, type ConnectionState, type Invocation } from '../transport/transport.js';
export { codeFromNodeError, isRetryableCode } from '../errors/errors.js';
