//! RFC 6962 / RFC 9162 Merkle tree hashing: tree heads, inclusion proofs and consistency
//! proofs, generated and verified.
//!
//! Generation takes the leaf hashes of the whole tree and costs O(n) hashes (each subtree
//! a proof needs is hashed once, iteratively, with O(log n) memory); verification costs
//! O(log n) hashes and never panics on hostile input.

use sha2::{Digest, Sha256};

/// A SHA-256 digest: a leaf hash, an interior node hash or a tree head.
pub type Hash = [u8; 32];

/// The leaf hash of RFC 6962 §2.1: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([0x00])
        .chain_update(data)
        .finalize()
        .into()
}

/// The interior node hash of RFC 6962 §2.1: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([0x01])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// The head of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The Merkle tree hash `MTH(D[n])` of RFC 6962 §2.1 over leaf hashes.
///
/// Computed left to right with a stack of perfect-subtree heads (one per set bit of the
/// number of leaves seen so far), so it costs n - 1 node hashes and O(log n) memory.
pub fn root(leaves: &[Hash]) -> Hash {
    let mut stack: Vec<Hash> = Vec::with_capacity(64);
    for (seen, leaf) in leaves.iter().enumerate() {
        let mut hash = *leaf;
        // Each trailing one bit of `seen` is a perfect subtree of equal height to merge.
        for _ in 0..seen.trailing_ones() {
            let left = stack
                .pop()
                .expect("one stacked subtree per set bit of `seen`");
            hash = node_hash(&left, &hash);
        }
        stack.push(hash);
    }
    let Some(mut hash) = stack.pop() else {
        return empty_root();
    };
    while let Some(left) = stack.pop() {
        hash = node_hash(&left, &hash);
    }
    hash
}

/// The largest power of two strictly less than `n` (`n >= 2`): where RFC 6962 splits a tree.
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The audit path `PATH(index, D[n])` of RFC 6962 §2.1.1 for the tree over `leaves`,
/// ordered from the leaf's sibling up to the root's child.
///
/// Empty when `index` is not a leaf of the tree (and for the only leaf of a one-leaf tree).
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Vec<Hash> {
    let mut m = match usize::try_from(index) {
        Ok(m) if m < leaves.len() => m,
        _ => return Vec::new(),
    };
    // Walk from the root down to the leaf, taking the sibling subtree at each level.
    let mut tree = leaves;
    let mut path = Vec::new();
    while tree.len() > 1 {
        let k = split(tree.len());
        let (left, right) = tree.split_at(k);
        if m < k {
            path.push(root(right));
            tree = left;
        } else {
            path.push(root(left));
            tree = right;
            m -= k;
        }
    }
    path.reverse();
    path
}

/// Verifies an inclusion proof with the algorithm of RFC 9162 §2.1.3.2: `leaf` is the leaf
/// hash at `index` in the tree of `size` leaves whose head is `root`.
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// The consistency proof `PROOF(old_size, D[n])` of RFC 6962 §2.1.2 between the tree of
/// the first `old_size` leaves and the tree over all of `leaves`.
///
/// Empty when there is nothing to prove: `old_size` is 0 or not less than `leaves.len()`.
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Vec<Hash> {
    let mut m = match usize::try_from(old_size) {
        Ok(m) if m > 0 && m < leaves.len() => m,
        _ => return Vec::new(),
    };
    // SUBPROOF(m, D[n], b), unrolled from the root down; `whole` is b.
    let mut tree = leaves;
    let mut whole = true;
    let mut proof = Vec::new();
    while m < tree.len() {
        let k = split(tree.len());
        let (left, right) = tree.split_at(k);
        if m <= k {
            proof.push(root(right));
            tree = left;
        } else {
            proof.push(root(left));
            tree = right;
            m -= k;
            whole = false;
        }
    }
    // The old tree's last subtree: only absent when it is the whole old tree.
    if !whole {
        proof.push(root(tree));
    }
    proof.reverse();
    proof
}

/// Verifies a consistency proof with the algorithm of RFC 9162 §2.1.4.2: the tree of
/// `old_size` leaves with head `old_root` is a prefix of the tree of `new_size` leaves with
/// head `new_root`.
///
/// Equal sizes need an empty proof and equal heads; the empty tree (whose head must be
/// [`empty_root`]) is a prefix of every tree, with an empty proof.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if old_size == 0 {
        return proof.is_empty() && *old_root == empty_root();
    }
    if proof.is_empty() {
        return false;
    }
    // When the old tree is a perfect subtree its head is the proof's implicit first node.
    let (first, rest) = if old_size.is_power_of_two() {
        (old_root, proof)
    } else {
        match proof.split_first() {
            Some(split) => split,
            None => return false,
        }
    };
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    fr == *old_root && sr == *new_root && s == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(hex: &str) -> Hash {
        hex::decode(hex).expect("hex").try_into().expect("32 bytes")
    }

    /// The eight leaves of the RFC 6962 reference tree (certificate-transparency test data).
    fn reference_leaves() -> Vec<Hash> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|d| leaf_hash(&hex::decode(d).expect("hex")))
        .collect()
    }

    const REFERENCE_ROOTS: [&str; 9] = [
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

    fn leaves(n: usize, seed: u64) -> Vec<Hash> {
        (0..n as u64)
            .map(|i| leaf_hash(&[seed.to_le_bytes(), i.to_le_bytes()].concat()))
            .collect()
    }

    // The RFC 6962 definitions, transcribed literally (recursive, copying) as the oracle.
    fn naive_root(d: &[Hash]) -> Hash {
        match d.len() {
            0 => empty_root(),
            1 => d[0],
            n => {
                let k = split(n);
                node_hash(&naive_root(&d[..k]), &naive_root(&d[k..]))
            }
        }
    }

    fn naive_path(m: usize, d: &[Hash]) -> Vec<Hash> {
        if d.len() <= 1 {
            return Vec::new();
        }
        let k = split(d.len());
        if m < k {
            [naive_path(m, &d[..k]), vec![naive_root(&d[k..])]].concat()
        } else {
            [naive_path(m - k, &d[k..]), vec![naive_root(&d[..k])]].concat()
        }
    }

    fn naive_subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if b { Vec::new() } else { vec![naive_root(d)] };
        }
        let k = split(n);
        if m <= k {
            [naive_subproof(m, &d[..k], b), vec![naive_root(&d[k..])]].concat()
        } else {
            [
                naive_subproof(m - k, &d[k..], false),
                vec![naive_root(&d[..k])],
            ]
            .concat()
        }
    }

    fn flip(proof: &[Hash], bit: usize) -> Vec<Hash> {
        let mut p = proof.to_vec();
        p[bit / 256][bit % 256 / 8] ^= 1 << (bit % 8);
        p
    }

    #[test]
    fn hashes_match_the_rfc_6962_reference_tree() {
        assert_eq!(root(&[]), h(REFERENCE_ROOTS[0]));
        assert_eq!(leaf_hash(b""), h(REFERENCE_ROOTS[1]));
        let d = reference_leaves();
        for n in 0..=d.len() {
            assert_eq!(root(&d[..n]), h(REFERENCE_ROOTS[n]), "size {n}");
        }
    }

    #[test]
    fn proofs_match_the_rfc_6962_reference_vectors() {
        let d = reference_leaves();
        let r8 = h(REFERENCE_ROOTS[8]);
        let incl0 = [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ]
        .map(h);
        let incl5 = [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ]
        .map(h);
        assert_eq!(inclusion_proof(&d, 0), incl0);
        assert_eq!(inclusion_proof(&d, 5), incl5);
        assert!(verify_inclusion(&d[0], 0, 8, &incl0, &r8));
        assert!(verify_inclusion(&d[5], 5, 8, &incl5, &r8));

        let cons_6_8 = [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ]
        .map(h);
        let cons_2_5 = [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ]
        .map(h);
        assert_eq!(consistency_proof(&d, 6), cons_6_8);
        assert_eq!(consistency_proof(&d[..5], 2), cons_2_5);
        let (r2, r5, r6) = (
            h(REFERENCE_ROOTS[2]),
            h(REFERENCE_ROOTS[5]),
            h(REFERENCE_ROOTS[6]),
        );
        assert!(verify_consistency(6, 8, &r6, &r8, &cons_6_8));
        assert!(verify_consistency(2, 5, &r2, &r5, &cons_2_5));
        assert!(!verify_consistency(6, 8, &r5, &r8, &cons_6_8));
    }

    #[test]
    fn generation_matches_the_literal_rfc_definitions() {
        for n in 0..=70 {
            let d = leaves(n, 1);
            assert_eq!(root(&d), naive_root(&d), "root of {n}");
            for m in 0..n {
                assert_eq!(
                    inclusion_proof(&d, m as u64),
                    naive_path(m, &d),
                    "PATH({m}, {n})"
                );
                if m > 0 {
                    let want = naive_subproof(m, &d, true);
                    assert_eq!(consistency_proof(&d, m as u64), want, "PROOF({m}, {n})");
                }
            }
        }
    }

    #[test]
    fn every_bit_of_every_small_proof_matters() {
        for n in 1..=16 {
            let d = leaves(n, 2);
            let r = root(&d);
            for i in 0..n {
                let p = inclusion_proof(&d, i as u64);
                assert!(verify_inclusion(&d[i], i as u64, n as u64, &p, &r));
                for bit in 0..p.len() * 256 {
                    assert!(!verify_inclusion(
                        &d[i],
                        i as u64,
                        n as u64,
                        &flip(&p, bit),
                        &r
                    ));
                }
            }
            for m in 1..n {
                let p = consistency_proof(&d, m as u64);
                let old = root(&d[..m]);
                assert!(verify_consistency(m as u64, n as u64, &old, &r, &p));
                for bit in 0..p.len() * 256 {
                    assert!(!verify_consistency(
                        m as u64,
                        n as u64,
                        &old,
                        &r,
                        &flip(&p, bit)
                    ));
                }
            }
        }
    }

    #[test]
    fn degenerate_inputs_are_rejected_or_empty() {
        let d = leaves(5, 3);
        let r = root(&d);
        assert!(inclusion_proof(&d, 5).is_empty());
        assert!(inclusion_proof(&d, u64::MAX).is_empty());
        assert!(inclusion_proof(&d[..1], 0).is_empty());
        assert!(verify_inclusion(&d[0], 0, 1, &[], &d[0]));
        assert!(!verify_inclusion(&d[0], 1, 1, &[], &d[0]));
        assert!(!verify_inclusion(&d[0], 0, 0, &[], &d[0]));
        assert!(!verify_inclusion(&d[0], u64::MAX, u64::MAX, &[], &r));
        assert!(consistency_proof(&d, 0).is_empty());
        assert!(consistency_proof(&d, 5).is_empty());
        assert!(consistency_proof(&d, 6).is_empty());
        assert!(verify_consistency(5, 5, &r, &r, &[]));
        assert!(!verify_consistency(5, 5, &r, &d[0], &[]));
        assert!(!verify_consistency(5, 5, &r, &r, &[r]));
        assert!(verify_consistency(0, 5, &empty_root(), &r, &[]));
        assert!(!verify_consistency(0, 5, &r, &r, &[]));
        assert!(!verify_consistency(4, 5, &root(&d[..4]), &r, &[]));
        assert!(!verify_consistency(6, 5, &r, &r, &[]));
        assert!(!verify_consistency(u64::MAX - 1, u64::MAX, &r, &r, &[r]));
    }

    #[test]
    fn a_million_leaves_is_linear() {
        let d = leaves(1 << 20, 4);
        let r = root(&d);
        let i = (1 << 20) - 12_345;
        let p = inclusion_proof(&d, i);
        assert_eq!(p.len(), 20);
        assert!(verify_inclusion(&d[i as usize], i, 1 << 20, &p, &r));
        let old = 999_999;
        let c = consistency_proof(&d, old);
        assert!(verify_consistency(
            old,
            1 << 20,
            &root(&d[..old as usize]),
            &r,
            &c
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn inclusion_proofs_verify_and_any_flipped_bit_fails(
            n in 1usize..300, seed: u64, salt: usize,
        ) {
            let d = leaves(n, seed);
            let r = root(&d);
            for i in 0..n {
                let idx = i as u64;
                let p = inclusion_proof(&d, idx);
                prop_assert!(verify_inclusion(&d[i], idx, n as u64, &p, &r));
                if !p.is_empty() {
                    let bit = salt.wrapping_add(i.wrapping_mul(7919)) % (p.len() * 256);
                    prop_assert!(!verify_inclusion(&d[i], idx, n as u64, &flip(&p, bit), &r));
                    prop_assert!(!verify_inclusion(&d[i], idx, n as u64, &p[1..], &r));
                }
                let mut leaf = d[i];
                leaf[salt % 32] ^= 0x80;
                prop_assert!(!verify_inclusion(&leaf, idx, n as u64, &p, &r));
                prop_assert!(!verify_inclusion(&d[i], idx, n as u64, &[p.clone(), vec![r]].concat(), &r));
                if n > 1 {
                    let other = (i + 1 + salt % (n - 1)) % n;
                    prop_assert!(!verify_inclusion(&d[i], other as u64, n as u64, &p, &r));
                }
            }
        }

        #[test]
        fn consistency_proofs_verify_and_tampered_ones_fail(
            n in 1usize..300, seed: u64, salt: usize,
        ) {
            let d = leaves(n, seed);
            let r = root(&d);
            for m in 1..=n {
                let old = root(&d[..m]);
                let (m64, n64) = (m as u64, n as u64);
                let p = consistency_proof(&d, m64);
                prop_assert!(verify_consistency(m64, n64, &old, &r, &p));
                if !p.is_empty() {
                    let bit = salt.wrapping_add(m.wrapping_mul(7919)) % (p.len() * 256);
                    prop_assert!(!verify_consistency(m64, n64, &old, &r, &flip(&p, bit)));
                    prop_assert!(!verify_consistency(m64, n64, &old, &r, &p[1..]));
                    prop_assert!(!verify_consistency(m64, n64, &old, &r, &[p.clone(), vec![r]].concat()));
                    prop_assert!(!verify_consistency(m64, n64, &r, &old, &p));
                    prop_assert!(!verify_consistency(m64 - 1, n64, &old, &r, &p));
                }
                let mut bad_old = old;
                bad_old[salt % 32] ^= 1;
                prop_assert!(!verify_consistency(m64, n64, &bad_old, &r, &p));
            }
        }
    }
}
