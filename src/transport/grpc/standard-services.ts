import type grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as HEALTH_PROTO } from 'grpc-health-check';
import type { ServedService } from '../transport.js';
import { withProtocMapEntries } from './reflection-descriptors.js';
import type { GrpcSettings } from './settings.js';

/*
 * The services every gRPC server is expected to answer, so that tools built for gRPC work on a
 * shuttle provider as on any other server:
 *
 * - grpc.health.v1.Health (Check and Watch): Kubernetes gRPC probes, grpc_health_probe and load
 *   balancers. The overall status ("") and each exported service are SERVING while the provider
 *   runs and NOT_SERVING from the moment it starts draining.
 * - Server reflection, v1 and v1alpha (grpcurl, grpcui, Postman with no .proto at hand): lists
 *   the services and serves the file descriptors of those the transport's .proto files declare,
 *   plus the health service's own.
 *
 * Both come from the grpc-js project (grpc-health-check, @grpc/reflection); what is ours is
 * only which names they report and when the status flips.
 */

/** The status name the health service reports for the whole server. */
const OVERALL = '';

/** The health and reflection services of one gRPC server. */
export class StandardServices {
  readonly #health: HealthImplementation;
  readonly #reflection: ReflectionService;
  readonly #names: readonly string[];

  /**
   * @param served what the provider exports (each name gets its own health status).
   * @param protos the transport's .proto files or descriptor set, whose declarations reflection serves.
   */
  constructor(served: readonly ServedService[], protos: Pick<GrpcSettings, 'protoFiles' | 'descriptorSet'>) {
    this.#names = [OVERALL, ...new Set(served.map((entry) => entry.service))];
    this.#health = new HealthImplementation(Object.fromEntries(this.#names.map((name) => [name, 'SERVING'])));
    // keepCase and the rest as @grpc/reflection's own examples: descriptors keep the .proto's
    // field names (max_tokens), which is what a reflection client must see.
    const definition = {
      ...protoLoader.loadSync([...protos.protoFiles, HEALTH_PROTO], { keepCase: true }),
      ...(protos.descriptorSet === undefined ? {} : protoLoader.loadFileDescriptorSetFromBuffer(Buffer.from(protos.descriptorSet), { keepCase: true })),
    };
    this.#reflection = new ReflectionService(withProtocMapEntries(definition));
  }

  /** Adds both services to `server` (before it starts serving). */
  addTo(server: grpc.Server): void {
    this.#health.addToServer(server);
    this.#reflection.addToServer(server);
  }

  /**
   * Reports every service and the server as NOT_SERVING; Watch streams hear of it at once,
   * Check answers it from now on.
   */
  draining(): void {
    for (const name of this.#names) this.#health.setStatus(name, 'NOT_SERVING');
  }
}
