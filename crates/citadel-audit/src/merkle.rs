//! RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their verification.
//!
//! - leaf hash: `SHA-256(0x00 || entry)`;
//! - interior node: `SHA-256(0x01 || left || right)`;
//! - the tree of `n > 1` leaves splits at `k`, the largest power of two
//!   smaller than `n`: `MTH(D[n]) = node(MTH(D[0:k]), MTH(D[k:n]))`;
//! - the empty tree hashes to `SHA-256("")` (`e3b0c442…`), as RFC 6962
//!   section 2.1 defines it. Go's `golang.org/x/mod/sumdb/tlog.TreeHash(0)`
//!   returns 32 zero bytes instead; this crate follows the RFC.
//!
//! Proofs are produced from the hashes of *complete* subtrees (2^level
//! leaves starting at a multiple of 2^level), which every tree of every
//! earlier size is made of. [`NodeSource`] is the interface to such stored
//! nodes; [`MemoryTree`] is the in-memory implementation. Any root, inclusion
//! proof or consistency proof costs O(log n) node look-ups and hashes,
//! whatever the tree size.
//!
//! Verification ([`verify_inclusion`], [`verify_consistency`]) follows
//! RFC 9162 sections 2.1.3.2 and 2.1.4.2 step by step.

use citadel_crypto::hash::sha256;

/// A SHA-256 hash: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// Length of a [`Hash`](type@Hash) in bytes.
pub const HASH_LEN: usize = 32;

/// The largest number of hashes an inclusion or consistency proof can hold
/// for a tree of at most 2^64 − 1 leaves.
pub const MAX_PROOF_LEN: usize = 64;

/// The root of the empty tree: `SHA-256("")` (RFC 6962 section 2.1).
pub fn empty_root() -> Hash {
    sha256(b"")
}

/// The hash of a log entry: `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut buf = Vec::with_capacity(entry.len() + 1);
    buf.push(0x00);
    buf.extend_from_slice(entry);
    sha256(&buf)
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 1 + 2 * HASH_LEN];
    buf[0] = 0x01;
    buf[1..=HASH_LEN].copy_from_slice(left);
    buf[1 + HASH_LEN..].copy_from_slice(right);
    sha256(&buf)
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The old tree is larger than the new one.
    #[error("a tree of size {old} cannot be a prefix of a tree of size {new}")]
    SizesOutOfOrder {
        /// The old tree size.
        old: u64,
        /// The new tree size.
        new: u64,
    },
    /// The proof has more hashes than the tree sizes call for.
    #[error("the proof has more hashes than the tree sizes call for")]
    ProofTooLong,
    /// The proof has fewer hashes than the tree sizes call for.
    #[error("the proof has fewer hashes than the tree sizes call for")]
    ProofTooShort,
    /// The sizes call for an empty proof (equal sizes, or an empty old tree)
    /// but hashes were given.
    #[error("the tree sizes call for an empty proof, but {0} hashes were given")]
    ProofNotEmpty(usize),
    /// The hashes computed from the proof are not the roots given.
    #[error("the proof does not lead to the expected root hash")]
    RootMismatch,
}

/// Why a root or proof could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// A size larger than the tree was asked for.
    #[error("tree size {size} asked for, but the tree has only {tree_size} leaves")]
    SizeBeyondTree {
        /// The size asked for.
        size: u64,
        /// The number of leaves in the tree.
        tree_size: u64,
    },
    /// A leaf index outside the tree of the given size.
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A consistency proof from a larger to a smaller tree was asked for.
    #[error("no consistency proof from size {old} to the smaller size {new}")]
    SizesOutOfOrder {
        /// The old tree size.
        old: u64,
        /// The new tree size.
        new: u64,
    },
    /// The node source does not hold a node it should hold.
    #[error("the hash of the subtree at level {level}, index {index} is not available")]
    MissingNode {
        /// Level of the node (0 for leaves).
        level: u32,
        /// Index of the node within its level.
        index: u64,
    },
    /// The node source failed (for example, a read from disk).
    #[error("cannot read tree nodes: {0}")]
    Storage(String),
}

/// Something that can supply the hashes of complete subtrees: the node at
/// `level`, `index` is the root of the 2^`level` leaves starting at leaf
/// `index << level`.
///
/// Every node wholly inside the first [`NodeSource::tree_size`] leaves must be
/// available. Implement it over a storage layer to produce proofs without
/// holding the tree in memory; [`MemoryTree`] is the in-memory implementation.
pub trait NodeSource {
    /// The number of leaves the source knows.
    fn tree_size(&self) -> u64;

    /// The hash of the complete subtree at `level`, `index`.
    fn node(&self, level: u32, index: u64) -> Result<Hash, TreeError>;
}

/// The largest power of two strictly smaller than `n` (0 when `n` is 0 or 1;
/// callers only ask for `n >= 2`).
fn split_point(n: u64) -> u64 {
    let bits = 64 - n.saturating_sub(1).leading_zeros();
    if bits == 0 { 0 } else { 1u64 << (bits - 1) }
}

/// The RFC 6962 hash of leaves `[start, start + len)`, `len >= 1`, when
/// `start` is a multiple of the smallest power of two `>= len`, which holds
/// for every subtree the RFC's recursions visit. The range is the complete
/// subtrees given by the bits of `len`, highest first, folded from the right.
fn range_hash<S: NodeSource + ?Sized>(src: &S, start: u64, len: u64) -> Result<Hash, TreeError> {
    let mut pieces: [(u32, u64); 64] = [(0, 0); 64];
    let mut count = 0;
    let mut offset = start;
    let mut rest = len;
    while rest != 0 {
        let level = 63 - rest.leading_zeros();
        let size = 1u64 << level;
        if offset % size != 0 {
            // Not a subtree of the RFC's recursion: a bug in the caller.
            return Err(TreeError::MissingNode {
                level,
                index: offset >> level,
            });
        }
        pieces[count] = (level, offset >> level);
        count += 1;
        offset += size;
        rest -= size;
    }
    let mut iter = pieces[..count].iter().rev();
    let Some(&(level, index)) = iter.next() else {
        return Ok(empty_root());
    };
    let mut acc = src.node(level, index)?;
    for &(level, index) in iter {
        acc = node_hash(&src.node(level, index)?, &acc);
    }
    Ok(acc)
}

fn check_size<S: NodeSource + ?Sized>(src: &S, size: u64) -> Result<(), TreeError> {
    let tree_size = src.tree_size();
    if size > tree_size {
        return Err(TreeError::SizeBeyondTree { size, tree_size });
    }
    Ok(())
}

/// The root hash of the first `size` leaves of `src`.
pub fn root_at<S: NodeSource + ?Sized>(src: &S, size: u64) -> Result<Hash, TreeError> {
    check_size(src, size)?;
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(src, 0, size)
}

/// The inclusion proof (RFC 6962 `PATH(index, D[size])`) of leaf `index`
/// in the tree of the first `size` leaves, ordered from the leaf's sibling
/// up to the root's child.
pub fn prove_inclusion<S: NodeSource + ?Sized>(
    src: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, TreeError> {
    check_size(src, size)?;
    if index >= size {
        return Err(TreeError::IndexOutOfRange { index, size });
    }
    // Walk down from the root; each step records the sibling subtree.
    let mut path = Vec::new();
    let (mut start, mut n, mut m) = (0u64, size, index);
    while n > 1 {
        let k = split_point(n);
        if m < k {
            path.push(range_hash(src, start + k, n - k)?);
            n = k;
        } else {
            path.push(range_hash(src, start, k)?);
            start += k;
            m -= k;
            n -= k;
        }
    }
    path.reverse();
    Ok(path)
}

/// The consistency proof (RFC 6962 `PROOF(old, D[new])`) that the tree of
/// the first `old` leaves is a prefix of the tree of the first `new` leaves.
/// Empty when `old` is 0 or equal to `new`.
pub fn prove_consistency<S: NodeSource + ?Sized>(
    src: &S,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, TreeError> {
    if old > new {
        return Err(TreeError::SizesOutOfOrder { old, new });
    }
    check_size(src, new)?;
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[start, start + n), b), unrolled from the root down.
    let mut path = Vec::new();
    let (mut start, mut n, mut m, mut b) = (0u64, new, old, true);
    loop {
        if m == n {
            if !b {
                path.push(range_hash(src, start, n)?);
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            path.push(range_hash(src, start + k, n - k)?);
            n = k;
        } else {
            path.push(range_hash(src, start, k)?);
            start += k;
            m -= k;
            n -= k;
            b = false;
        }
    }
    path.reverse();
    Ok(path)
}

/// The root hash that an inclusion proof leads to (RFC 9162 section
/// 2.1.3.2, steps 1 to 4, and the size check of step 5).
pub fn root_from_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    // 1. leaf_index must be smaller than tree_size.
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // 2. fn = leaf_index, sn = tree_size - 1.
    let (mut f_n, mut s_n) = (index, size - 1);
    // 3. r = hash.
    let mut r = *leaf_hash;
    // 4. for each p in inclusion_path:
    for p in proof {
        // a. if sn is 0, fail.
        if s_n == 0 {
            return Err(ProofError::ProofTooLong);
        }
        // b. if LSB(fn) is set, or fn == sn:
        if f_n & 1 == 1 || f_n == s_n {
            // i. r = HASH(0x01 || p || r)
            r = node_hash(p, &r);
            // ii. if LSB(fn) is not set, shift until LSB(fn) is set or fn is 0.
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            // otherwise r = HASH(0x01 || r || p)
            r = node_hash(&r, p);
        }
        // c. shift both once.
        f_n >>= 1;
        s_n >>= 1;
    }
    // 5. sn must be 0.
    if s_n != 0 {
        return Err(ProofError::ProofTooShort);
    }
    Ok(r)
}

/// Verifies that `leaf_hash` is leaf `index` of the tree of `size` leaves
/// whose root is `root` (RFC 9162 section 2.1.3.2).
///
/// The proof binds the leaf's position and the root; tree sizes in which the
/// leaf has the same path (leaf 0 in trees of 3 and 4 leaves) accept the same
/// proof, which is why `size` and `root` must come together from one signed
/// checkpoint.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let computed = root_from_inclusion(leaf_hash, index, size, proof)?;
    if &computed == root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Verifies that the tree of `old_size` leaves with root `old_root` is a
/// prefix of the tree of `new_size` leaves with root `new_root`
/// (RFC 9162 section 2.1.4.2).
///
/// The cases the RFC leaves out are decided as follows: equal sizes need an
/// empty proof and equal roots; an old size of 0 needs an empty proof and
/// `old_root` equal to [`empty_root`] (the only root a tree of size 0 has).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesOutOfOrder {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == new_size || old_size == 0 {
        if !proof.is_empty() {
            return Err(ProofError::ProofNotEmpty(proof.len()));
        }
        let empty_ok = old_size != 0 || *old_root == empty_root();
        let equal_ok = old_size != new_size || old_root == new_root;
        return if empty_ok && equal_ok {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    // 1. An empty consistency_path fails.
    let Some((first_entry, rest)) = proof.split_first() else {
        return Err(ProofError::ProofTooShort);
    };
    // 2. If first is an exact power of 2, prepend first_hash: the path then
    //    starts with old_root and continues with the whole proof.
    let (start, rest) = if old_size.is_power_of_two() {
        (old_root, proof)
    } else {
        (first_entry, rest)
    };
    // 3. fn = first - 1, sn = second - 1.
    let (mut f_n, mut s_n) = (old_size - 1, new_size - 1);
    // 4. If LSB(fn) is set, shift both until it is not.
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    // 5. fr = sr = first value of the path.
    let (mut fr, mut sr) = (*start, *start);
    // 6. For each subsequent value c:
    for c in rest {
        // a. if sn is 0, fail.
        if s_n == 0 {
            return Err(ProofError::ProofTooLong);
        }
        // b. if LSB(fn) is set, or fn == sn:
        if f_n & 1 == 1 || f_n == s_n {
            // i, ii.
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            // iii. if LSB(fn) is not set, shift until it is or fn is 0.
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            // otherwise sr = HASH(0x01 || sr || c).
            sr = node_hash(&sr, c);
        }
        // c. shift both once.
        f_n >>= 1;
        s_n >>= 1;
    }
    // 7. fr == first_hash, sr == second_hash, sn == 0.
    if s_n != 0 {
        return Err(ProofError::ProofTooShort);
    }
    if fr != *old_root || sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// An append-only Merkle tree held in memory.
///
/// Level `k` keeps the hash of every complete subtree of 2^k leaves (level 0
/// the leaf hashes), so any earlier root and any proof are O(log n) look-ups.
/// Memory is about 64 bytes per leaf (640 MB at ten million leaves); a log
/// that outgrows that implements [`NodeSource`] over its storage instead.
/// Rebuild it at start-up with [`MemoryTree::from_leaf_hashes`].
///
/// ```
/// use citadel_audit::merkle::{self, MemoryTree};
///
/// let mut tree = MemoryTree::new();
/// for entry in [&b"a"[..], b"b", b"c"] {
///     tree.push_entry(entry);
/// }
/// let root = tree.root(3).unwrap();
/// let proof = tree.inclusion_proof(1, 3).unwrap();
/// merkle::verify_inclusion(&merkle::leaf_hash(b"b"), 1, 3, &proof, &root).unwrap();
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree of the given leaf hashes, in order.
    pub fn from_leaf_hashes<I: IntoIterator<Item = Hash>>(leaves: I) -> Self {
        let mut tree = Self::new();
        for leaf in leaves {
            tree.push_leaf_hash(leaf);
        }
        tree
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends a leaf by its hash and returns its index.
    pub fn push_leaf_hash(&mut self, hash: Hash) -> u64 {
        let index = self.size();
        let mut level = 0;
        let mut carry = hash;
        loop {
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            let nodes = &mut self.levels[level];
            nodes.push(carry);
            // An even count means the last two nodes complete a parent.
            match nodes.as_slice() {
                [.., left, right] if nodes.len() % 2 == 0 => {
                    carry = node_hash(left, right);
                    level += 1;
                }
                _ => break,
            }
        }
        index
    }

    /// Appends an entry (hashing it with [`leaf_hash`]) and returns its index.
    pub fn push_entry(&mut self, entry: &[u8]) -> u64 {
        self.push_leaf_hash(leaf_hash(entry))
    }

    /// The hash of leaf `index`, if the tree has it.
    pub fn leaf_hash(&self, index: u64) -> Option<Hash> {
        let i = usize::try_from(index).ok()?;
        self.levels.first()?.get(i).copied()
    }

    /// The root of the whole tree.
    pub fn current_root(&self) -> Hash {
        // The size is the tree's own, so this cannot fail.
        root_at(self, self.size()).unwrap_or_else(|_| empty_root())
    }

    /// The root of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, TreeError> {
        root_at(self, size)
    }

    /// See [`prove_inclusion`].
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, TreeError> {
        prove_inclusion(self, index, size)
    }

    /// See [`prove_consistency`].
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, TreeError> {
        prove_consistency(self, old, new)
    }
}

impl NodeSource for MemoryTree {
    fn tree_size(&self) -> u64 {
        self.size()
    }

    fn node(&self, level: u32, index: u64) -> Result<Hash, TreeError> {
        usize::try_from(level)
            .ok()
            .and_then(|l| self.levels.get(l))
            .zip(usize::try_from(index).ok())
            .and_then(|(nodes, i)| nodes.get(i))
            .copied()
            .ok_or(TreeError::MissingNode { level, index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(s: &str) -> Hash {
        let v = hex::decode(s).unwrap();
        v.try_into().unwrap()
    }

    // The RFC 6962 reference tree: transparency-dev/merkle
    // testonly/constants.go (LeafInputs, RootHashes, EmptyRootHash); the same
    // tree is used by Trillian and certificate-transparency-go.
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    // testonly/constants.go NodeHashes: level 0 (leaf hashes) to level 3.
    const NODES: [&[&str]; 4] = [
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
            "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
        ],
        &[
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        ],
        &[
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
        &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
    ];

    // transparency-dev/merkle proof/verify_test.go `inclusionProofs`
    // (leaf numbers there are 1-based; here they are 0-based indexes).
    fn inclusion_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
        vec![
            (0, 1, vec![]),
            (
                0,
                8,
                vec![
                    h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                    h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                    h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
                ],
            ),
            (
                5,
                8,
                vec![
                    h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                    h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
                ],
            ),
            (
                2,
                3,
                vec![h(
                    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
                )],
            ),
            (
                1,
                5,
                vec![
                    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
                    h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                    h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                ],
            ),
        ]
    }

    // transparency-dev/merkle proof/verify_test.go `consistencyProofs`.
    fn consistency_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
        vec![
            (1, 1, vec![]),
            (
                1,
                8,
                vec![
                    h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                    h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                    h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
                ],
            ),
            (
                6,
                8,
                vec![
                    h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                    h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
                ],
            ),
            (
                2,
                5,
                vec![
                    h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                    h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                ],
            ),
            (
                6,
                7,
                vec![
                    h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                    h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
                    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
                ],
            ),
        ]
    }

    fn reference_tree() -> MemoryTree {
        let mut t = MemoryTree::new();
        for l in LEAVES {
            t.push_entry(&hex::decode(l).unwrap());
        }
        t
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(empty_root(), h(ROOTS[0]));
        assert_eq!(MemoryTree::new().current_root(), h(ROOTS[0]));
    }

    #[test]
    fn reference_roots_and_nodes() {
        let t = reference_tree();
        for (size, root) in ROOTS.iter().enumerate() {
            assert_eq!(t.root(size as u64).unwrap(), h(root), "size {size}");
        }
        assert_eq!(t.current_root(), h(ROOTS[8]));
        for (level, nodes) in NODES.iter().enumerate() {
            for (i, node) in nodes.iter().enumerate() {
                assert_eq!(t.node(level as u32, i as u64).unwrap(), h(node));
            }
        }
        for (i, leaf) in LEAVES.iter().enumerate() {
            assert_eq!(leaf_hash(&hex::decode(leaf).unwrap()), h(NODES[0][i]));
        }
        assert_eq!(
            t.root(9),
            Err(TreeError::SizeBeyondTree {
                size: 9,
                tree_size: 8
            })
        );
    }

    #[test]
    fn reference_inclusion_proofs() {
        let t = reference_tree();
        for (index, size, proof) in inclusion_vectors() {
            assert_eq!(t.inclusion_proof(index, size).unwrap(), proof);
            let leaf = h(NODES[0][index as usize]);
            let root = h(ROOTS[size as usize]);
            assert_eq!(
                root_from_inclusion(&leaf, index, size, &proof).unwrap(),
                root
            );
            verify_inclusion(&leaf, index, size, &proof, &root).unwrap();
        }
    }

    #[test]
    fn reference_consistency_proofs() {
        let t = reference_tree();
        for (old, new, proof) in consistency_vectors() {
            assert_eq!(t.consistency_proof(old, new).unwrap(), proof);
            verify_consistency(
                old,
                new,
                &h(ROOTS[old as usize]),
                &h(ROOTS[new as usize]),
                &proof,
            )
            .unwrap();
        }
    }

    /// The corruptions transparency-dev/merkle's verifierCheck applies.
    #[test]
    fn reference_inclusion_corruptions_fail() {
        let some = h("abacaba000000000000000000000000000000000000000000060061e00123456");
        for (index, size, proof) in inclusion_vectors() {
            let leaf = h(NODES[0][index as usize]);
            let root = h(ROOTS[size as usize]);
            let v =
                |i: u64, s: u64, p: &[Hash], r: &Hash, l: &Hash| verify_inclusion(l, i, s, p, r);
            assert!(v(index.wrapping_sub(1), size, &proof, &root, &leaf).is_err());
            assert!(v(index + 1, size, &proof, &root, &leaf).is_err());
            assert!(v(index ^ 2, size, &proof, &root, &leaf).is_err());
            assert!(v(index, size * 2, &proof, &root, &leaf).is_err());
            assert!(v(index, size / 2, &proof, &root, &leaf).is_err());
            assert!(v(index, size, &proof, &root, &some).is_err());
            assert!(v(index, size, &proof, &empty_root(), &leaf).is_err());
            assert!(v(index, size, &proof, &some, &leaf).is_err());
            let mut longer = proof.clone();
            longer.push(root);
            assert!(v(index, size, &longer, &root, &leaf).is_err());
            let mut longer = vec![root];
            longer.extend_from_slice(&proof);
            assert!(v(index, size, &longer, &root, &leaf).is_err());
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i][0] ^= 8;
                assert!(v(index, size, &bad, &root, &leaf).is_err());
            }
            if !proof.is_empty() {
                assert!(v(index, size, &proof[..proof.len() - 1], &root, &leaf).is_err());
            }
        }
    }

    /// transparency-dev/merkle TestVerifyConsistency edge cases, with this
    /// crate's stricter rule that a size-0 tree has the empty root.
    #[test]
    fn consistency_edge_cases() {
        let r1 = h(ROOTS[1]);
        let r2 = h(ROOTS[2]);
        let e = empty_root();
        assert!(verify_consistency(0, 0, &e, &e, &[]).is_ok());
        assert!(verify_consistency(0, 1, &e, &r2, &[]).is_ok());
        assert!(verify_consistency(1, 1, &r2, &r2, &[]).is_ok());
        assert!(verify_consistency(0, 0, &r1, &r2, &[]).is_err());
        assert!(verify_consistency(0, 0, &e, &r2, &[]).is_err());
        assert!(verify_consistency(0, 0, &r1, &e, &[]).is_err());
        assert!(verify_consistency(1, 1, &r1, &r2, &[]).is_err());
        assert!(verify_consistency(0, 1, &r1, &r2, &[]).is_err());
        assert!(verify_consistency(1, 0, &r1, &r2, &[]).is_err());
        assert!(verify_consistency(2, 1, &r1, &r2, &[]).is_err());
        assert!(verify_consistency(1, 2, &r1, &r2, &[]).is_err());
        assert!(verify_consistency(0, 0, &e, &e, &[e]).is_err());
        assert!(verify_consistency(0, 1, &e, &e, &[e]).is_err());
        assert!(verify_consistency(1, 1, &e, &e, &[e]).is_err());
        assert_eq!(
            verify_inclusion(&r1, 0, 0, &[], &r1),
            Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert!(verify_inclusion(&r1, 2, 1, &[], &r1).is_err());
        verify_inclusion(&r1, 0, 1, &[], &r1).unwrap();
    }

    #[test]
    fn generation_errors() {
        let t = reference_tree();
        assert_eq!(
            t.inclusion_proof(8, 8),
            Err(TreeError::IndexOutOfRange { index: 8, size: 8 })
        );
        assert!(t.inclusion_proof(0, 9).is_err());
        assert_eq!(
            t.consistency_proof(5, 4),
            Err(TreeError::SizesOutOfOrder { old: 5, new: 4 })
        );
        assert!(t.consistency_proof(1, 9).is_err());
        assert_eq!(t.consistency_proof(0, 8).unwrap(), Vec::<Hash>::new());
        assert_eq!(t.leaf_hash(8), None);
    }

    /// Recomputes MTH by the RFC's recursive definition, independently of the
    /// stored levels.
    fn naive_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
            }
        }
    }

    #[test]
    fn large_tree_proofs_are_cheap_and_right() {
        let n = 100_003u64;
        let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let t = MemoryTree::from_leaf_hashes(leaves.iter().copied());
        assert_eq!(t.current_root(), naive_root(&leaves));
        for size in [1u64, 2, 3, 1000, 65_536, 65_537, 99_999, n] {
            let root = t.root(size).unwrap();
            assert_eq!(root, naive_root(&leaves[..size as usize]));
            for index in [0, size / 3, size - 1] {
                let p = t.inclusion_proof(index, size).unwrap();
                verify_inclusion(&leaves[index as usize], index, size, &p, &root).unwrap();
            }
            let p = t.consistency_proof(size, n).unwrap();
            verify_consistency(size, n, &root, &t.current_root(), &p).unwrap();
        }
    }

    fn flip(proof: &[Hash], i: usize, bit: usize) -> Vec<Hash> {
        let mut bad = proof.to_vec();
        bad[i][bit / 8] ^= 1 << (bit % 8);
        bad
    }

    #[test]
    fn every_single_bit_flip_fails_on_a_small_tree() {
        let n = 13u64;
        let t = MemoryTree::from_leaf_hashes((0..n).map(|i| leaf_hash(&[i as u8])));
        for size in 1..=n {
            let root = t.root(size).unwrap();
            for index in 0..size {
                let leaf = t.leaf_hash(index).unwrap();
                let p = t.inclusion_proof(index, size).unwrap();
                for i in 0..p.len() {
                    for bit in 0..256 {
                        let bad = flip(&p, i, bit);
                        assert!(verify_inclusion(&leaf, index, size, &bad, &root).is_err());
                    }
                }
            }
            for old in 1..size {
                let old_root = t.root(old).unwrap();
                let p = t.consistency_proof(old, size).unwrap();
                for i in 0..p.len() {
                    for bit in 0..256 {
                        let bad = flip(&p, i, bit);
                        assert!(verify_consistency(old, size, &old_root, &root, &bad).is_err());
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn all_proofs_verify_and_corruptions_fail(size in 1u64..300, seed in any::<u64>()) {
            let t = MemoryTree::from_leaf_hashes((0..size).map(|i| leaf_hash(&(i ^ seed).to_le_bytes())));
            let roots: Vec<Hash> = (0..=size).map(|s| t.root(s).unwrap()).collect();
            let leaves: Vec<Hash> = (0..size).map(|i| t.leaf_hash(i).unwrap()).collect();
            prop_assert_eq!(roots[size as usize], naive_root(&leaves));
            let bit = |i: usize| ((seed >> (i % 8 * 8)) as usize + i * 37) % 256;
            // The same leaves, then as many more: proofs for larger wrong sizes.
            let longer = MemoryTree::from_leaf_hashes(
                leaves.iter().copied().chain((0..=size).map(|i| leaf_hash(&i.to_be_bytes()))),
            );

            {
                let n = size;
                let root = &roots[n as usize];
                for index in 0..n {
                    let leaf = &leaves[index as usize];
                    let p = t.inclusion_proof(index, n).unwrap();
                    prop_assert!(p.len() <= MAX_PROOF_LEN);
                    prop_assert!(verify_inclusion(leaf, index, n, &p, root).is_ok());
                    for i in 0..p.len() {
                        prop_assert!(verify_inclusion(leaf, index, n, &flip(&p, i, bit(i)), root).is_err());
                    }
                    if index + 1 < n {
                        prop_assert!(verify_inclusion(leaf, index + 1, n, &p, root).is_err());
                    }
                    if index > 0 {
                        prop_assert!(verify_inclusion(leaf, index - 1, n, &p, root).is_err());
                    }
                    // A wrong size fails whenever it changes the leaf's path
                    // (sizes sharing the path share the proof; the root,
                    // signed with its size, tells them apart).
                    for wrong in [n + 1, n - 1, n * 2, n / 2] {
                        if wrong > index && wrong != n {
                            let honest = longer.inclusion_proof(index, wrong).unwrap();
                            if honest.len() != p.len() || wrong == n * 2 || wrong == n / 2 {
                                prop_assert!(verify_inclusion(leaf, index, wrong, &p, root).is_err(), "index {} size {} wrong {}", index, n, wrong);
                            }
                        }
                    }
                }
            }

            for new in 1..=size {
                let new_root = &roots[new as usize];
                for old in 0..=new {
                    let old_root = &roots[old as usize];
                    let p = t.consistency_proof(old, new).unwrap();
                    prop_assert!(verify_consistency(old, new, old_root, new_root, &p).is_ok());
                    if old == 0 || old == new {
                        prop_assert!(p.is_empty());
                        continue;
                    }
                    for i in 0..p.len() {
                        prop_assert!(verify_consistency(old, new, old_root, new_root, &flip(&p, i, bit(i))).is_err());
                    }
                    prop_assert!(verify_consistency(old - 1, new, old_root, new_root, &p).is_err());
                    prop_assert!(verify_consistency(old + 1, new, old_root, new_root, &p).is_err());
                    for wrong in [new + 1, new - 1, new * 2, new / 2] {
                        if wrong != new {
                            let honest = if wrong >= old && wrong <= longer.size() {
                                longer.consistency_proof(old, wrong).unwrap().len()
                            } else {
                                usize::MAX
                            };
                            if honest != p.len() || wrong == new * 2 || wrong == new / 2 {
                                prop_assert!(verify_consistency(old, wrong, old_root, new_root, &p).is_err(), "old {} new {} wrong {}", old, new, wrong);
                            }
                        }
                    }
                    prop_assert!(verify_consistency(old ^ 2, new, old_root, new_root, &p).is_err());
                    prop_assert!(verify_consistency(old, new, new_root, old_root, &p).is_err());
                }
            }
        }
    }
}
