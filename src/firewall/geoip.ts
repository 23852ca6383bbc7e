// A MaxMind-format GeoIP database (GeoLite2/GeoIP2 Country or City), checked at open, read per connection.
import { readFileSync } from "node:fs";
import { type CountryResponse, Reader } from "mmdb-lib";
import { formatIp, type IpAddress } from "../ip/ip.ts";
import { isV4Mapped } from "./address-words.ts";
import type { GeoIpLookup } from "./firewall.ts";

/** Why a GeoIP database could not be opened; the message names the path. */
export class GeoIpError extends Error {
  override readonly name = "GeoIpError";
}

// MaxMind DB spec, "Database Metadata": the metadata follows the last occurrence of this marker.
const METADATA_MARKER = Buffer.from("abcdef4d61784d696e642e636f6d", "hex"); // "\xAB\xCD\xEFMaxMind.com"
// MaxMind DB spec, "Data Section Separator": 16 zero bytes between the search tree and the data.
const DATA_SECTION_SEPARATOR_BYTES = 16;
// Addresses looked up at open so that a damaged data section fails there, not on a client.
const PROBE_ADDRESSES_V4 = ["1.1.1.1", "8.8.8.8", "127.0.0.2", "203.0.113.1"];
const PROBE_ADDRESSES_V6 = [...PROBE_ADDRESSES_V4, "::1", "2001:4860:4860::8888", "2a00:1450::1"];
// Decoded records kept per database. A Country database has a few hundred distinct records,
// so they all stay; a City database has millions, so the cache is bounded.
const RECORD_CACHE_ENTRIES = 4096;

/** A bounded cache for mmdb-lib's decoder: when full, the oldest entry goes. */
class RecordCache {
  private readonly entries = new Map<string | number, unknown>();

  get(key: string | number): unknown {
    return this.entries.get(key);
  }

  set(key: string | number, value: unknown): void {
    if (this.entries.size >= RECORD_CACHE_ENTRIES) {
      this.entries.delete(this.entries.keys().next().value!);
    }
    this.entries.set(key, value);
  }
}

function fail(path: string, why: string, cause?: unknown): never {
  throw new GeoIpError(`geoip database ${JSON.stringify(path)}: ${why}`, { cause });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Checks every search-tree record: each must point to a node, to "no data", or into the data
 * section (MaxMind DB spec, "Search Tree Section"). One pass over the tree, so a truncated or
 * overwritten tree fails at open instead of throwing out of a lookup.
 */
function checkSearchTree(
  path: string,
  db: Buffer,
  reader: Reader<CountryResponse>,
  dataSize: number,
) {
  const { nodeCount, recordSize, nodeByteSize } = reader.metadata;
  const firstData = nodeCount + DATA_SECTION_SEPARATOR_BYTES;
  const endData = firstData + dataSize;
  for (let node = 0; node < nodeCount; node++) {
    const at = node * nodeByteSize;
    let left: number;
    let right: number;
    if (recordSize === 24) {
      left = (db[at]! << 16) | (db[at + 1]! << 8) | db[at + 2]!;
      right = (db[at + 3]! << 16) | (db[at + 4]! << 8) | db[at + 5]!;
    } else if (recordSize === 28) {
      left = ((db[at + 3]! & 0xf0) << 20) | (db[at]! << 16) | (db[at + 1]! << 8) | db[at + 2]!;
      right = ((db[at + 3]! & 0x0f) << 24) | (db[at + 4]! << 16) | (db[at + 5]! << 8) | db[at + 6]!;
    } else {
      left = db.readUInt32BE(at);
      right = db.readUInt32BE(at + 4);
    }
    const leftOk = left <= nodeCount || (left >= firstData && left < endData);
    const rightOk = right <= nodeCount || (right >= firstData && right < endData);
    if (!leftOk || !rightOk) {
      fail(path, `search tree node ${node} points outside the file (damaged or truncated)`);
    }
  }
}

/**
 * A GeoIP database loaded whole into memory (GeoLite2-Country is ~10 MB, -City ~70 MB) and
 * validated at open. Reloading (SIGHUP) means opening a new one and swapping it in: an
 * instance never changes.
 */
export class GeoIpDatabase implements GeoIpLookup {
  /** When MaxMind built the file (metadata `build_epoch`), or null when it does not say. */
  readonly buildEpoch: Date | null;
  /** Metadata `database_type`, e.g. "GeoLite2-Country". */
  readonly databaseType: string;
  private readonly ipVersion: number;

  private constructor(
    readonly path: string,
    private readonly reader: Reader<CountryResponse>,
    /** The file's bytes, in shared memory so that worker threads read the same copy. */
    readonly bytes: Uint8Array,
  ) {
    const epoch = reader.metadata.buildEpoch;
    this.buildEpoch = epoch instanceof Date && !Number.isNaN(epoch.getTime()) ? epoch : null;
    this.databaseType = reader.metadata.databaseType;
    this.ipVersion = reader.metadata.ipVersion;
  }

  /**
   * Reads and validates the file: MaxMind DB format 2, a database type containing "Country"
   * or "City", a search tree whose every record points inside the file, and a few probe
   * lookups that decode real records. Anything else throws GeoIpError naming the path.
   */
  static open(path: string): GeoIpDatabase {
    let file: Buffer;
    try {
      file = readFileSync(path);
    } catch (error) {
      fail(path, `cannot read: ${describe(error)}`, error);
    }
    const shared = new Uint8Array(new SharedArrayBuffer(file.length));
    shared.set(file);
    return GeoIpDatabase.fromBytes(path, shared);
  }

  /**
   * The same checks over bytes already read: a worker thread opens the supervisor's copy (the
   * `bytes` of a database the supervisor opened), so every thread uses one file, read once.
   */
  static fromBytes(path: string, bytes: Uint8Array): GeoIpDatabase {
    const db = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const markerAt = db.lastIndexOf(METADATA_MARKER);
    if (markerAt === -1) {
      fail(path, "not a MaxMind DB file (no metadata marker; truncated or another format)");
    }
    let reader: Reader<CountryResponse>;
    try {
      reader = new Reader<CountryResponse>(db, { cache: new RecordCache() });
    } catch (error) {
      fail(path, `unreadable MaxMind DB metadata: ${describe(error)}`, error);
    }
    const metadata = reader.metadata;
    if (metadata.binaryFormatMajorVersion !== 2) {
      fail(
        path,
        `unsupported MaxMind DB format version ${metadata.binaryFormatMajorVersion} (expected 2)`,
      );
    }
    const type = String(metadata.databaseType);
    if (!type.includes("Country") && !type.includes("City")) {
      fail(
        path,
        `database type ${JSON.stringify(type)} has no countries (expected a Country or City database)`,
      );
    }
    if (metadata.ipVersion !== 4 && metadata.ipVersion !== 6) {
      fail(path, `ip_version ${metadata.ipVersion} (expected 4 or 6)`);
    }
    if (!Number.isSafeInteger(metadata.nodeCount) || metadata.nodeCount <= 0) {
      fail(path, `node_count ${metadata.nodeCount} is not a positive integer`);
    }
    const dataStart = metadata.searchTreeSize + DATA_SECTION_SEPARATOR_BYTES;
    if (dataStart > markerAt) {
      fail(path, `search tree of ${metadata.nodeCount} nodes does not fit in the file (truncated)`);
    }
    for (let i = metadata.searchTreeSize; i < dataStart; i++) {
      if (db[i] !== 0) fail(path, "no data section separator after the search tree (damaged)");
    }
    checkSearchTree(path, db, reader, markerAt - dataStart);
    const probes = metadata.ipVersion === 6 ? PROBE_ADDRESSES_V6 : PROBE_ADDRESSES_V4;
    for (const probe of probes) {
      let record: unknown;
      try {
        record = reader.get(probe);
      } catch (error) {
        fail(path, `probe lookup of ${probe} failed: ${describe(error)}`, error);
      }
      if (record !== null && (typeof record !== "object" || Array.isArray(record))) {
        fail(path, `probe lookup of ${probe} found a ${typeof record}, not a record (damaged)`);
      }
    }
    return new GeoIpDatabase(path, reader, bytes);
  }

  /**
   * The country an address is in: `country.iso_code`, or, when the record has no located
   * country, `registered_country.iso_code` (the country of the registry that allocated the
   * network). Null when the database knows neither. Blocking by country means "traffic
   * from there", and MaxMind leaves `country` out for some networks it only knows the
   * registration of; those are still that registry country's networks.
   *
   * A record that cannot be decoded also gives null (the connection is let through):
   * open() checked the file, so this is a defence, not a path operators should meet.
   */
  country(address: IpAddress): string | null {
    let family = address.family;
    let bytes = address.bytes;
    // Defence for callers that built an IpAddress by hand: ::ffff:a.b.c.d is the IPv4 client.
    if (family === 6 && isV4Mapped(bytes)) {
      family = 4;
      bytes = bytes.subarray(12);
    }
    // An IPv4-only tree has no IPv6 data; walking it with 128 bits would read the wrong branch.
    if (family === 6 && this.ipVersion === 4) return null;
    let record: CountryResponse | null;
    try {
      record = this.reader.get(formatIp({ family, bytes }));
    } catch {
      return null;
    }
    if (record === null) return null;
    const code = record.country?.iso_code ?? record.registered_country?.iso_code;
    return typeof code === "string" ? code : null;
  }
}
