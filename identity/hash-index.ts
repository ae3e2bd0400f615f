/**
 * Identifier hashes → node numbers, compactly. Nodes are numbered 0, 1, 2…
 * in the order they are added; node n's hash is the 32 bytes at n × 32 in
 * one buffer, and an open-addressing table of node numbers finds them.
 *
 * Why not a Map of the 43-character strings: at millions of identifiers the
 * strings and Map entries cost about 110 bytes each against about 40 here,
 * and one V8 Map holds at most about 16.7M entries. The hashes are HMACs,
 * uniformly random, so their first four bytes are a good table hash as they are.
 */
const HASH_BYTES = 32;
const EMPTY = 0;
const REMOVED = -1;

export class HashIndex {
  private hashes = Buffer.alloc(HASH_BYTES * 1024);
  /** Node + 1 per slot; EMPTY, or REMOVED for a slot whose node was forgotten. */
  private slots = new Int32Array(2048);
  private used = 0;
  private live = 0;
  private count = 0;
  private readonly probe = Buffer.alloc(HASH_BYTES);

  /** How many hashes it holds. */
  get size(): number {
    return this.live;
  }

  /** How many nodes were ever added (the next node's number). */
  get nodes(): number {
    return this.count;
  }

  /** The node of a hash (base64url), or undefined. */
  get(hash: string): number | undefined {
    if (!this.decode(hash)) return undefined;
    const mask = this.slots.length - 1;
    for (let slot = this.probe.readUInt32LE(0) & mask; ; slot = (slot + 1) & mask) {
      const entry = this.slots[slot] as number;
      if (entry === EMPTY) return undefined;
      if (entry !== REMOVED && this.matches(entry - 1)) return entry - 1;
    }
  }

  /** Adds a hash as the next node and returns its number. The hash must not be present. */
  add(hash: string): number {
    if (!this.decode(hash)) throw new Error(`not an identifier hash: "${hash.slice(0, 50)}"`);
    const node = this.count++;
    if ((node + 1) * HASH_BYTES > this.hashes.length) {
      const grown = Buffer.alloc(Math.ceil(this.hashes.length / HASH_BYTES / 2) * 3 * HASH_BYTES);
      this.hashes.copy(grown);
      this.hashes = grown;
    }
    this.probe.copy(this.hashes, node * HASH_BYTES);
    if ((this.used + 1) * 10 > this.slots.length * 7) this.rehash();
    this.place(node);
    this.used++;
    this.live++;
    return node;
  }

  /** Forgets a node: its bytes are zeroed, so the hash is gone from memory too. */
  remove(node: number): void {
    const mask = this.slots.length - 1;
    for (
      let slot = this.hashes.readUInt32LE(node * HASH_BYTES) & mask;
      ;
      slot = (slot + 1) & mask
    ) {
      const entry = this.slots[slot] as number;
      if (entry === EMPTY) return;
      if (entry === node + 1) {
        this.slots[slot] = REMOVED;
        this.hashes.fill(0, node * HASH_BYTES, (node + 1) * HASH_BYTES);
        this.live--;
        return;
      }
    }
  }

  /** The hash of a node, as base64url; '' for a forgotten one. */
  hashOf(node: number): string {
    const start = node * HASH_BYTES;
    return this.isRemoved(node) ? '' : this.hashes.toString('base64url', start, start + HASH_BYTES);
  }

  /** The hashes of nodes 0…n−1 as one buffer (forgotten ones zeroed), for snapshots. */
  toBytes(): Buffer {
    return Buffer.from(this.hashes.subarray(0, this.count * HASH_BYTES));
  }

  /** An index of the nodes in `bytes` (as `toBytes` wrote them), all-zero entries left out. */
  static fromBytes(bytes: Uint8Array): HashIndex {
    const index = new HashIndex();
    const nodes = bytes.length / HASH_BYTES;
    index.hashes = Buffer.alloc(
      Math.max(HASH_BYTES * 1024, Math.ceil((bytes.length * 1.5) / HASH_BYTES) * HASH_BYTES),
    );
    Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).copy(index.hashes);
    index.count = nodes;
    let capacity = 2048;
    while (capacity * 7 < nodes * 10) capacity *= 2;
    index.slots = new Int32Array(capacity);
    for (let node = 0; node < nodes; node++) {
      if (index.isRemoved(node)) continue;
      index.place(node);
      index.used++;
      index.live++;
    }
    return index;
  }

  private decode(hash: string): boolean {
    return hash.length === 43 && this.probe.write(hash, 'base64url') === HASH_BYTES;
  }

  private matches(node: number): boolean {
    const start = node * HASH_BYTES;
    return this.hashes.compare(this.probe, 0, HASH_BYTES, start, start + HASH_BYTES) === 0;
  }

  private isRemoved(node: number): boolean {
    const start = node * HASH_BYTES;
    for (let i = start; i < start + HASH_BYTES; i++) if (this.hashes[i] !== 0) return false;
    return true;
  }

  private place(node: number): void {
    const mask = this.slots.length - 1;
    let slot = this.hashes.readUInt32LE(node * HASH_BYTES) & mask;
    while (this.slots[slot] !== EMPTY) slot = (slot + 1) & mask;
    this.slots[slot] = node + 1;
  }

  /** Doubles the table and drops removed slots. */
  private rehash(): void {
    const old = this.slots;
    this.slots = new Int32Array(old.length * 2);
    this.used = 0;
    for (const entry of old) {
      if (entry === EMPTY || entry === REMOVED) continue;
      this.place(entry - 1);
      this.used++;
    }
  }
}
