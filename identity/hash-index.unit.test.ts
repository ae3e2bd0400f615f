import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HashIndex } from './hash-index.js';

const hashOf = (text: string) => createHash('sha256').update(text).digest('base64url');

describe(HashIndex.name, () => {
  it('numbers hashes in the order they come, finds them, and gives them back', () => {
    const index = new HashIndex();
    const hashes = Array.from({ length: 5000 }, (_, i) => hashOf(`id-${i}`));
    expect(hashes.map((hash) => index.add(hash))).toEqual(hashes.map((_, i) => i));
    for (const [node, hash] of hashes.entries()) {
      expect(index.get(hash)).toBe(node);
      expect(index.hashOf(node)).toBe(hash);
    }
    expect(index.get(hashOf('never added'))).toBeUndefined();
    expect(index.size).toBe(5000);
  });

  it('forgets a node completely: not found, its bytes zeroed, its neighbours still found', () => {
    const index = new HashIndex();
    const hashes = Array.from({ length: 3000 }, (_, i) => hashOf(`id-${i}`));
    for (const hash of hashes) index.add(hash);
    index.remove(1234);
    expect(index.get(hashes[1234] as string)).toBeUndefined();
    expect(index.hashOf(1234)).toBe('');
    expect(index.toBytes().includes(Buffer.from(hashes[1234] as string, 'base64url'))).toBe(false);
    for (const [node, hash] of hashes.entries())
      if (node !== 1234) expect(index.get(hash)).toBe(node);
    expect(index.size).toBe(2999);
    const restored = HashIndex.fromBytes(index.toBytes());
    expect(restored.get(hashes[1234] as string)).toBeUndefined();
    expect(restored.get(hashes[2999] as string)).toBe(2999);
    expect(restored.nodes).toBe(3000);
  });

  it('refuses what is not a 32-byte base64url hash', () => {
    const index = new HashIndex();
    expect(() => index.add('short')).toThrow(/not an identifier hash/);
    expect(index.get('not a hash at all, but 43 characters long!!')).toBeUndefined();
  });

  it('agrees with a Map under any mix of adds and removes', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.nat(300).map((n) => ({ add: n })),
            fc.nat(300).map((n) => ({ remove: n })),
          ),
        ),
        (operations) => {
          const index = new HashIndex();
          const model = new Map<string, number>();
          for (const operation of operations) {
            if ('add' in operation) {
              const hash = hashOf(`h${operation.add}`);
              if (!model.has(hash)) model.set(hash, index.add(hash));
            } else {
              const hash = hashOf(`h${operation.remove}`);
              const node = model.get(hash);
              if (node !== undefined) {
                index.remove(node);
                model.delete(hash);
              }
            }
          }
          for (let n = 0; n <= 300; n++)
            expect(index.get(hashOf(`h${n}`))).toBe(model.get(hashOf(`h${n}`)));
          expect(index.size).toBe(model.size);
        },
      ),
    );
  });
});
