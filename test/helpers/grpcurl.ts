// A grpcurl stand-in with no generated code: the service's descriptors come from the server's
// reflection, the request is the JSON body under protobuf's JSON rules, the answer comes back
// as protobuf JSON (lowerCamelCase), as grpcurl prints it.
import {
  createFileRegistry,
  fromBinary,
  fromJson,
  type JsonValue,
  toBinary,
  toJson,
} from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { reflectionStream } from "../admin-support.ts";

export interface GrpcurlResult {
  /** null when the call succeeded. */
  error: grpc.ServiceError | null;
  /** The response as protobuf JSON (with default values), or null on error. */
  response: JsonValue | null;
}

/** `grpcurl … target Service/Method -d body`, over the given TLS credentials. */
export async function grpcurl(
  target: string,
  credentials: grpc.ChannelCredentials,
  fullMethod: string,
  body = "{}",
): Promise<GrpcurlResult> {
  const [serviceName, methodName] = fullMethod.split("/") as [string, string];
  const reflection = reflectionStream(target, credentials);
  let files: Buffer[];
  try {
    const found = await reflection.ask({ file_containing_symbol: serviceName });
    if (found.message_response !== "file_descriptor_response") {
      throw new Error(`reflection does not know ${serviceName}: ${JSON.stringify(found)}`);
    }
    files = found.file_descriptor_response.file_descriptor_proto;
  } finally {
    reflection.close();
  }
  // The answer lists the file first; a registry is built from its dependencies up.
  const writer = new BinaryWriter();
  for (const file of [...files].reverse()) writer.tag(1, WireType.LengthDelimited).bytes(file);
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, writer.finish()));
  const service = registry.getService(serviceName);
  const method = service?.methods.find((candidate) => candidate.name === methodName);
  if (!method) throw new Error(`no method ${fullMethod} in the reflected descriptors`);
  const request = toBinary(method.input, fromJson(method.input, JSON.parse(body), { registry }));
  const client = new grpc.Client(target, credentials);
  try {
    const answer = await new Promise<{ error: grpc.ServiceError | null; bytes: Buffer | null }>(
      (resolve) => {
        client.makeUnaryRequest(
          `/${serviceName}/${methodName}`,
          (bytes: Buffer) => bytes,
          (bytes: Buffer) => bytes,
          Buffer.from(request),
          (error, value) => resolve({ error: error ?? null, bytes: value ?? null }),
        );
      },
    );
    if (answer.error) return { error: answer.error, response: null };
    const message = fromBinary(method.output, answer.bytes ?? new Uint8Array());
    return {
      error: null,
      response: toJson(method.output, message, { registry, alwaysEmitImplicit: true }),
    };
  } finally {
    client.close();
  }
}
