// The admin API's public surface; only re-exports.
export {
  ADMIN_SERVICE_NAME,
  type AdminServer,
  AdminServerError,
  type AdminServerOptions,
  type BoundAdminServer,
  bindAdminServer,
  startAdminServer,
} from "./server.ts";
