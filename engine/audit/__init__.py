"""Verifiable audit (issue 18): a Merkle tree over each log, signed checkpoints (C2SP
tlog-checkpoint in a C2SP signed note), proofs and an outsider's verifier.

merkle: RFC 9162 hashing, compact range, proofs, verifiers. note: signed notes and keys.
checkpoint: the checkpoint body."""
