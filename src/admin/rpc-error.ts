// A refusal with a gRPC status code, thrown by the service layer and sent as the call's status.
import { status } from "@grpc/grpc-js";

/**
 * An expected refusal (bad input, unknown listener, …): the message goes to the client as the
 * status details, and it names the field and the value given, like the config loader does.
 */
export class RpcError extends Error {
  override readonly name = "RpcError";

  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
  }
}

export function invalidArgument(message: string): RpcError {
  return new RpcError(status.INVALID_ARGUMENT, message);
}

export function notFound(message: string): RpcError {
  return new RpcError(status.NOT_FOUND, message);
}
