// gRPC server reflection (v1 and v1alpha) answered from the embedded FileDescriptorSet.
//
// Why not @grpc/reflection: it rebuilds descriptors through protobufjs and loses each file's
// `dependency` list (grpc/grpc-node#3034), so grpcurl cannot resolve google.protobuf.Timestamp
// in GetStatusResponse; it also reads its own .proto from disk, which a `bun build --compile`
// executable does not have. Serving the bytes `buf build` wrote avoids both: file names, imports,
// snake_case field names and json_name are exactly what protoc would give.
import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import {
  type DescriptorProto,
  type EnumDescriptorProto,
  type FieldDescriptorProto,
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";
import { type handleBidiStreamingCall, type Server, status } from "@grpc/grpc-js";
import {
  ServerReflectionService as ReflectionV1Service,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "../../gen/grpc/reflection/v1/reflection.ts";
import { ServerReflectionService as ReflectionV1AlphaService } from "../../gen/grpc/reflection/v1alpha/reflection.ts";

/** FileDescriptorSet field 1: `repeated FileDescriptorProto file`. */
const FILE_DESCRIPTOR_SET_FILE = 1;

interface IndexedFile {
  name: string;
  /** The FileDescriptorProto exactly as encoded in the set. */
  bytes: Uint8Array;
  dependencies: string[];
}

/** Every file of a descriptor set with its symbols: what the reflection answers are made from. */
export class DescriptorIndex {
  private readonly files = new Map<string, IndexedFile>();
  /** Fully-qualified name (no leading dot) → file name. */
  private readonly symbols = new Map<string, string>();
  /** Message type → extension field number → file name. */
  private readonly extensions = new Map<string, Map<number, string>>();
  private readonly messages = new Set<string>();
  private readonly services = new Set<string>();

  constructor(descriptorSet: Uint8Array) {
    for (const bytes of splitFileDescriptorSet(descriptorSet)) {
      const file = fromBinary(FileDescriptorProtoSchema, bytes);
      this.files.set(file.name, { name: file.name, bytes, dependencies: file.dependency });
      this.indexFile(file);
    }
  }

  /** Every service declared in the set (`mc_proxy.v1.ProxyAdminService`, …). */
  serviceNames(): string[] {
    return [...this.services].sort();
  }

  /** The file and everything it imports, transitively, the file first; null when unknown. */
  fileWithDependencies(name: string): Buffer[] | null {
    const first = this.files.get(name);
    if (first === undefined) return null;
    const seen = new Set<string>([name]);
    const order: IndexedFile[] = [first];
    for (let i = 0; i < order.length; i++) {
      for (const dependency of order[i]!.dependencies) {
        const file = this.files.get(dependency);
        if (file !== undefined && !seen.has(dependency)) {
          seen.add(dependency);
          order.push(file);
        }
      }
    }
    return order.map((file) =>
      Buffer.from(file.bytes.buffer, file.bytes.byteOffset, file.bytes.byteLength),
    );
  }

  fileContainingSymbol(symbol: string): string | null {
    return this.symbols.get(symbol.replace(/^\./, "")) ?? null;
  }

  fileContainingExtension(messageType: string, fieldNumber: number): string | null {
    return this.extensions.get(messageType.replace(/^\./, ""))?.get(fieldNumber) ?? null;
  }

  /** Extension numbers of a message type ([] for one without), or null for an unknown type. */
  extensionNumbers(messageType: string): number[] | null {
    const name = messageType.replace(/^\./, "");
    if (!this.messages.has(name)) return null;
    return [...(this.extensions.get(name)?.keys() ?? [])].sort((a, b) => a - b);
  }

  private indexFile(file: FileDescriptorProto): void {
    const prefix = file.package === "" ? "" : `${file.package}.`;
    const add = (symbol: string) => this.symbols.set(symbol, file.name);
    const addExtension = (field: FieldDescriptorProto) => {
      add(`${prefix}${field.name}`);
      const extendee = field.extendee.replace(/^\./, "");
      const byNumber = this.extensions.get(extendee) ?? new Map<number, string>();
      byNumber.set(field.number, file.name);
      this.extensions.set(extendee, byNumber);
    };
    // Enum values are scoped beside their enum (C++ scoping rules), not inside it.
    const addEnum = (scope: string, type: EnumDescriptorProto) => {
      add(`${scope}${type.name}`);
      for (const value of type.value) add(`${scope}${value.name}`);
    };
    const addMessage = (scope: string, message: DescriptorProto) => {
      const name = `${scope}${message.name}`;
      add(name);
      this.messages.add(name);
      for (const field of message.field) add(`${name}.${field.name}`);
      for (const oneof of message.oneofDecl) add(`${name}.${oneof.name}`);
      for (const nested of message.nestedType) addMessage(`${name}.`, nested);
      for (const type of message.enumType) addEnum(`${name}.`, type);
      for (const extension of message.extension) addExtension(extension);
    };
    for (const message of file.messageType) addMessage(prefix, message);
    for (const type of file.enumType) addEnum(prefix, type);
    for (const extension of file.extension) addExtension(extension);
    for (const service of file.service) {
      const name = `${prefix}${service.name}`;
      add(name);
      this.services.add(name);
      for (const method of service.method) add(`${name}.${method.name}`);
    }
  }
}

/** The raw bytes of each `file` entry, so each is served exactly as buf encoded it. */
function splitFileDescriptorSet(set: Uint8Array): Uint8Array[] {
  const reader = new BinaryReader(set);
  const files: Uint8Array[] = [];
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === FILE_DESCRIPTOR_SET_FILE && wireType === WireType.LengthDelimited) {
      files.push(reader.bytes());
    } else {
      reader.skip(wireType);
    }
  }
  return files;
}

/** One reflection answer. `services` are the names listed by list_services. */
export function answerReflection(
  index: DescriptorIndex,
  services: readonly string[],
  request: ServerReflectionRequest,
): ServerReflectionResponse {
  const response: ServerReflectionResponse = { validHost: request.host, originalRequest: request };
  const files = (name: string | null, notFoundMessage: string) => {
    const found = name === null ? null : index.fileWithDependencies(name);
    if (found === null) {
      response.errorResponse = { errorCode: status.NOT_FOUND, errorMessage: notFoundMessage };
    } else {
      response.fileDescriptorResponse = { fileDescriptorProto: found };
    }
  };
  if (request.listServices !== undefined) {
    response.listServicesResponse = { service: services.map((name) => ({ name })) };
  } else if (request.fileByFilename !== undefined) {
    files(request.fileByFilename, `file ${JSON.stringify(request.fileByFilename)} not found`);
  } else if (request.fileContainingSymbol !== undefined) {
    const symbol = request.fileContainingSymbol;
    files(index.fileContainingSymbol(symbol), `symbol ${JSON.stringify(symbol)} not found`);
  } else if (request.fileContainingExtension !== undefined) {
    const { containingType, extensionNumber } = request.fileContainingExtension;
    files(
      index.fileContainingExtension(containingType, extensionNumber),
      `extension ${extensionNumber} of ${JSON.stringify(containingType)} not found`,
    );
  } else if (request.allExtensionNumbersOfType !== undefined) {
    const type = request.allExtensionNumbersOfType;
    const numbers = index.extensionNumbers(type);
    if (numbers === null) {
      response.errorResponse = {
        errorCode: status.NOT_FOUND,
        errorMessage: `message type ${JSON.stringify(type)} not found`,
      };
    } else {
      response.allExtensionNumbersResponse = { baseTypeName: type, extensionNumber: numbers };
    }
  } else {
    response.errorResponse = {
      errorCode: status.INVALID_ARGUMENT,
      errorMessage: "the request names no reflection method",
    };
  }
  return response;
}

/**
 * Registers grpc.reflection.v1 and v1alpha (same messages, different service name: grpcurl
 * tries v1 and falls back to v1alpha). Open streams are added to `openStreams` so that
 * shutdown can end them instead of waiting for clients to hang up.
 */
export function addReflectionServices(
  server: Server,
  index: DescriptorIndex,
  services: readonly string[],
  openStreams: Set<{ end(): void }>,
): void {
  const handler: handleBidiStreamingCall<ServerReflectionRequest, ServerReflectionResponse> = (
    call,
  ) => {
    openStreams.add(call);
    call.on("data", (request: ServerReflectionRequest) => {
      call.write(answerReflection(index, services, request));
    });
    call.on("end", () => {
      openStreams.delete(call);
      call.end();
    });
    // A client that goes away mid-stream: nothing to clean up but the set entry.
    call.on("error", () => openStreams.delete(call));
    call.on("cancelled", () => openStreams.delete(call));
  };
  server.addService(ReflectionV1Service, { serverReflectionInfo: handler });
  server.addService(ReflectionV1AlphaService, { serverReflectionInfo: handler });
}
