// The admin client's public surface; only re-exports.
export {
  AdminCallError,
  AdminClient,
  AdminConnectError,
  type AdminConnectOptions,
  connectOptionsFromGrpcConfig,
  DEFAULT_DEADLINE_MS,
  dialTarget,
  type ListenerRoutes,
} from "./admin-client.ts";
