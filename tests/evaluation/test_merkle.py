"""RFC 6962 Merkle tree: roots, audit paths and consistency proofs against the reference test vectors.

The 8 leaf inputs and the roots of the trees of their first 1..8 leaves are the reference data of
Certificate Transparency (RFC 6962 §2.1 test data, as published in google/certificate-transparency
and transparency-dev/merkle ``proof/verify_test.go``); the proof vectors are from the same file.
Tree of size 3, by hand: MTH = H(0x01 || H(0x01 || L0 || L1) || L2) with Li = H(0x00 || di).
"""
import hashlib

import pytest

from evaluation.merkle import (
    EMPTY_ROOT,
    ProofError,
    consistency_proof,
    frontier_append,
    frontier_root,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                     "606162636465666768696a6b6c6d6e6f")]
ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]
H = [leaf_hash(d) for d in LEAVES]


def _hx(*hexes):
    return [bytes.fromhex(h) for h in hexes]


#: (leaf index, tree size, audit path)
INCLUSION = [
    (0, 8, _hx("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
               "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
               "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")),
    (5, 8, _hx("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
               "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
               "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")),
    (2, 3, _hx("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (1, 5, _hx("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
               "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
               "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")),
]
#: (first size, second size, consistency proof)
CONSISTENCY = [
    (1, 8, INCLUSION[0][2]),
    (6, 8, _hx("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
               "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
               "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")),
    (2, 5, _hx("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
               "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")),
    (6, 7, _hx("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
               "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
               "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")),
]


def test_roots_match_the_reference_tree_heads():
    assert root_hash([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    for n in range(1, 9):
        assert root_hash(H[:n]) == ROOTS[n - 1], n
    # size 3 by hand (RFC 6962 §2.1): the first leaf hash is SHA-256(0x00)
    assert H[0] == hashlib.sha256(b"\x00").digest() == ROOTS[0]
    assert root_hash(H[:3]) == hashlib.sha256(b"\x01" + node_hash(H[0], H[1]) + H[2]).digest()


def test_frontier_gives_the_same_roots_as_the_full_tree():
    frontier: list[bytes] = []
    for n, h in enumerate(H):
        frontier = frontier_append(frontier, n, h)
        assert len(frontier) == bin(n + 1).count("1")
        assert frontier_root(frontier) == ROOTS[n]
    with pytest.raises(ValueError):
        frontier_append([], 3, H[0])


@pytest.mark.parametrize("index,size,path", INCLUSION)
def test_inclusion_proofs_match_the_vectors_and_verify(index, size, path):
    assert inclusion_proof(H[:size], index) == path
    verify_inclusion(index, size, H[index], path, ROOTS[size - 1])
    assert root_from_inclusion_proof(index, size, H[index], path) == ROOTS[size - 1]


@pytest.mark.parametrize("index,size,path", INCLUSION)
def test_corrupted_inclusion_proofs_are_refused(index, size, path):
    root, leaf = ROOTS[size - 1], H[index]
    probes = [
        (index + 1, size, leaf, path, root), (index ^ 2, size, leaf, path, root),
        (index, size * 2, leaf, path, root), (index, size // 2, leaf, path, root),
        (index, size, hashlib.sha256(b"wrong").digest(), path, root),
        (index, size, leaf, path, EMPTY_ROOT),
        (index, size, leaf, path + [root], root), (index, size, leaf, [root] + path, root),
        (index, size, leaf, path[:-1], root),
    ]
    if index > 0:
        probes.append((index - 1, size, leaf, path, root))
    for i in range(len(path)):
        flipped = list(path)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        probes.append((index, size, leaf, flipped, root))
    for probe in probes:
        with pytest.raises(ProofError):
            verify_inclusion(*probe)


def test_every_leaf_of_every_small_tree_proves_its_inclusion():
    hashes = [leaf_hash(bytes([i, i * 7 % 256])) for i in range(37)]
    for n in range(1, 38):
        root = root_hash(hashes[:n])
        for i in range(n):
            verify_inclusion(i, n, hashes[i], inclusion_proof(hashes[:n], i), root)


@pytest.mark.parametrize("first,second,proof", CONSISTENCY)
def test_consistency_proofs_match_the_vectors_and_verify(first, second, proof):
    assert consistency_proof(H[:second], first) == proof
    verify_consistency(first, second, ROOTS[first - 1], ROOTS[second - 1], proof)


@pytest.mark.parametrize("first,second,proof", CONSISTENCY)
def test_corrupted_consistency_proofs_are_refused(first, second, proof):
    r1, r2 = ROOTS[first - 1], ROOTS[second - 1]
    probes = [
        (first - 1, second, r1, r2, proof), (first + 1, second, r1, r2, proof),
        (first ^ 2, second, r1, r2, proof), (first, second * 2, r1, r2, proof),
        (first, second // 2, r1, r2, proof), (first, second, r2, r1, proof),
        (first, second, EMPTY_ROOT, r2, proof), (first, second, r1, EMPTY_ROOT, proof),
        (first, second, r1, r2, []), (first, second, r1, r2, proof + [r1]),
        (first, second, r1, r2, [r2] + proof), (first, second, r1, r2, [proof[0]] + proof),
        (first, second, r1, r2, proof[:-1]),
    ]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        probes.append((first, second, r1, r2, flipped))
    for probe in probes:
        if probe[0] == 0 and not probe[4]:
            continue  # the empty tree is a prefix of every tree
        with pytest.raises(ProofError):
            verify_consistency(*probe)


def test_consistency_between_all_small_tree_sizes():
    hashes = [leaf_hash(str(i).encode()) for i in range(20)]
    for n in range(0, 21):
        for m in range(0, n + 1):
            verify_consistency(m, n, root_hash(hashes[:m]), root_hash(hashes[:n]), consistency_proof(hashes[:n], m))


def test_trivial_consistency_cases():
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 5, EMPTY_ROOT, ROOTS[4], [])
    verify_consistency(3, 3, ROOTS[2], ROOTS[2], [])
    with pytest.raises(ProofError, match="same size"):
        verify_consistency(3, 3, ROOTS[2], ROOTS[3], [])
    with pytest.raises(ProofError, match="prefix"):
        verify_consistency(4, 3, ROOTS[3], ROOTS[2], [])
    with pytest.raises(ProofError, match="32-byte"):
        verify_consistency(1, 2, ROOTS[0], ROOTS[1], [b"short"])
    with pytest.raises(ValueError):
        inclusion_proof(H, 8)
    with pytest.raises(ValueError):
        consistency_proof(H, 9)
