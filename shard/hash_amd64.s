//go:build amd64 && !purego

// hash8: murmur3 x86 32-bit of eight lines at once with AVX2 (see
// hash_amd64.go). Each 32-bit lane of a Y register belongs to one line:
// lane i to line i. A step loads 32 bytes of each line and transposes the
// 8x8 block of dwords, so that one register holds the same block of all
// eight lines, and mixes eight blocks into the eight hashes with one
// instruction per operation of murmur3's round.

#include "textflag.h"

// The murmur3 constants, one in each of a vector's eight lanes.
DATA c1x8<>+0(SB)/8, $0xcc9e2d51cc9e2d51
DATA c1x8<>+8(SB)/8, $0xcc9e2d51cc9e2d51
DATA c1x8<>+16(SB)/8, $0xcc9e2d51cc9e2d51
DATA c1x8<>+24(SB)/8, $0xcc9e2d51cc9e2d51
GLOBL c1x8<>(SB), RODATA|NOPTR, $32

DATA c2x8<>+0(SB)/8, $0x1b8735931b873593
DATA c2x8<>+8(SB)/8, $0x1b8735931b873593
DATA c2x8<>+16(SB)/8, $0x1b8735931b873593
DATA c2x8<>+24(SB)/8, $0x1b8735931b873593
GLOBL c2x8<>(SB), RODATA|NOPTR, $32

DATA addx8<>+0(SB)/8, $0xe6546b64e6546b64
DATA addx8<>+8(SB)/8, $0xe6546b64e6546b64
DATA addx8<>+16(SB)/8, $0xe6546b64e6546b64
DATA addx8<>+24(SB)/8, $0xe6546b64e6546b64
GLOBL addx8<>(SB), RODATA|NOPTR, $32

DATA onex8<>+0(SB)/8, $0x0000000100000001
DATA onex8<>+8(SB)/8, $0x0000000100000001
DATA onex8<>+16(SB)/8, $0x0000000100000001
DATA onex8<>+24(SB)/8, $0x0000000100000001
GLOBL onex8<>(SB), RODATA|NOPTR, $32

DATA threex8<>+0(SB)/8, $0x0000000300000003
DATA threex8<>+8(SB)/8, $0x0000000300000003
DATA threex8<>+16(SB)/8, $0x0000000300000003
DATA threex8<>+24(SB)/8, $0x0000000300000003
GLOBL threex8<>(SB), RODATA|NOPTR, $32

DATA fourx8<>+0(SB)/8, $0x0000000400000004
DATA fourx8<>+8(SB)/8, $0x0000000400000004
DATA fourx8<>+16(SB)/8, $0x0000000400000004
DATA fourx8<>+24(SB)/8, $0x0000000400000004
GLOBL fourx8<>(SB), RODATA|NOPTR, $32

DATA thirtytwox8<>+0(SB)/8, $0x0000002000000020
DATA thirtytwox8<>+8(SB)/8, $0x0000002000000020
DATA thirtytwox8<>+16(SB)/8, $0x0000002000000020
DATA thirtytwox8<>+24(SB)/8, $0x0000002000000020
GLOBL thirtytwox8<>(SB), RODATA|NOPTR, $32

// The finalization's constants.
DATA f1x8<>+0(SB)/8, $0x85ebca6b85ebca6b
DATA f1x8<>+8(SB)/8, $0x85ebca6b85ebca6b
DATA f1x8<>+16(SB)/8, $0x85ebca6b85ebca6b
DATA f1x8<>+24(SB)/8, $0x85ebca6b85ebca6b
GLOBL f1x8<>(SB), RODATA|NOPTR, $32

DATA f2x8<>+0(SB)/8, $0xc2b2ae35c2b2ae35
DATA f2x8<>+8(SB)/8, $0xc2b2ae35c2b2ae35
DATA f2x8<>+16(SB)/8, $0xc2b2ae35c2b2ae35
DATA f2x8<>+24(SB)/8, $0xc2b2ae35c2b2ae35
GLOBL f2x8<>(SB), RODATA|NOPTR, $32

// LOADT loads the 32 bytes at offset R10 of each of the eight lines (whose
// starts are in AX, BX, CX, DX, SI, DI, R8, R9) and transposes them, so
// that Y0..Y7 hold the eight lines' 4-byte blocks 0..7 of this chunk, lane
// i of each from line i. It uses Y8..Y11; Y12..Y15 are untouched.
//
// With rows a..h (the lines) of dwords 0..7 (their blocks), the
// transposition takes three steps of eight shuffles. Rows are paired,
// dwords interleaved: a0 b0 a1 b1 | a4 b4 a5 b5 and a2 b2 a3 b3 | a6 b6
// a7 b7, likewise c-d, e-f and g-h. Pairs are joined, qwords interleaved:
// a0 b0 c0 d0 | a4 b4 c4 d4 (blocks 0 and 4 of a-d), then 1|5, 2|6, 3|7,
// and the same of e-h. Last, the 128-bit halves are joined: the low halves
// of a-d and e-h make blocks 0..3, the high halves blocks 4..7.
#define LOADT \
	VMOVDQU (AX)(R10*1), Y0 \
	VMOVDQU (BX)(R10*1), Y1 \
	VMOVDQU (CX)(R10*1), Y2 \
	VMOVDQU (DX)(R10*1), Y3 \
	VMOVDQU (SI)(R10*1), Y4 \
	VMOVDQU (DI)(R10*1), Y5 \
	VMOVDQU (R8)(R10*1), Y6 \
	VMOVDQU (R9)(R10*1), Y7 \
	VPUNPCKLDQ Y1, Y0, Y8 \
	VPUNPCKHDQ Y1, Y0, Y9 \
	VPUNPCKLDQ Y3, Y2, Y10 \
	VPUNPCKHDQ Y3, Y2, Y11 \
	VPUNPCKLDQ Y5, Y4, Y0 \
	VPUNPCKHDQ Y5, Y4, Y1 \
	VPUNPCKLDQ Y7, Y6, Y2 \
	VPUNPCKHDQ Y7, Y6, Y3 \
	VPUNPCKLQDQ Y10, Y8, Y4 \
	VPUNPCKHQDQ Y10, Y8, Y5 \
	VPUNPCKLQDQ Y11, Y9, Y6 \
	VPUNPCKHQDQ Y11, Y9, Y7 \
	VPUNPCKLQDQ Y2, Y0, Y8 \
	VPUNPCKHQDQ Y2, Y0, Y9 \
	VPUNPCKLQDQ Y3, Y1, Y10 \
	VPUNPCKHQDQ Y3, Y1, Y11 \
	VPERM2I128 $0x20, Y8, Y4, Y0 \
	VPERM2I128 $0x20, Y9, Y5, Y1 \
	VPERM2I128 $0x20, Y10, Y6, Y2 \
	VPERM2I128 $0x20, Y11, Y7, Y3 \
	VPERM2I128 $0x31, Y8, Y4, Y4 \
	VPERM2I128 $0x31, Y9, Y5, Y5 \
	VPERM2I128 $0x31, Y10, Y6, Y6 \
	VPERM2I128 $0x31, Y11, Y7, Y7

// MIXK turns the blocks k in K into murmur3's k*c1 rotl 15 * c2, using Y8.
#define MIXK(K) \
	VPMULLD c1x8<>(SB), K, K \
	VPSLLD $15, K, Y8 \
	VPSRLD $17, K, K \
	VPOR Y8, K, K \
	VPMULLD c2x8<>(SB), K, K

// MIXH sets H to rotl(H^K, 13)*5 + 0xe6546b64 in every lane, using Y9.
#define MIXH(K, H) \
	VPXOR K, H, H \
	VPSLLD $13, H, Y9 \
	VPSRLD $19, H, H \
	VPOR Y9, H, H \
	VPSLLD $2, H, Y9 \
	VPADDD addx8<>(SB), H, H \
	VPADDD Y9, H, H

// BLOCK mixes K into the hashes Y15 of every lane.
#define BLOCK(K) \
	MIXK(K) \
	MIXH(K, Y15)

// MBLOCK mixes K into the hashes Y15 of the lanes whose count of blocks
// (Y14) exceeds the index of this block (Y13), leaves the other lanes
// alone, and counts the block, using Y10..Y12.
#define MBLOCK(K) \
	MIXK(K) \
	VMOVDQA Y15, Y12 \
	MIXH(K, Y12) \
	VPCMPGTD Y13, Y14, Y10 \
	VPBLENDVB Y10, Y12, Y15, Y15 \
	VPADDD onex8<>(SB), Y13, Y13

// func hash8(data []byte, starts, lens, nb *[8]int32, full, chunks int, seed uint32, fin bool, out *[8]uint32)
TEXT ·hash8(SB), NOSPLIT, $0-80
	// AX..R9: the start of each line.
	MOVQ data_base+0(FP), R11
	MOVQ starts+24(FP), R12
	MOVLQSX 0(R12), AX
	ADDQ R11, AX
	MOVLQSX 4(R12), BX
	ADDQ R11, BX
	MOVLQSX 8(R12), CX
	ADDQ R11, CX
	MOVLQSX 12(R12), DX
	ADDQ R11, DX
	MOVLQSX 16(R12), SI
	ADDQ R11, SI
	MOVLQSX 20(R12), DI
	ADDQ R11, DI
	MOVLQSX 24(R12), R8
	ADDQ R11, R8
	MOVLQSX 28(R12), R9
	ADDQ R11, R9

	// Y15: the hashes, the seed in every lane. R10: the offset of the chunk.
	MOVL seed+64(FP), R11
	VMOVD R11, X15
	VPBROADCASTD X15, Y15
	XORQ R10, R10
	MOVQ full+48(FP), R11
	MOVQ chunks+56(FP), R12
	SUBQ R11, R12 // chunks left for the masked loop
	SHLQ $5, R11  // the bytes of the full chunks

	// The full chunks: every lane has all 8 blocks of each.
	CMPQ R10, R11
	JAE  masked

full:
	LOADT
	BLOCK(Y0)
	BLOCK(Y1)
	BLOCK(Y2)
	BLOCK(Y3)
	BLOCK(Y4)
	BLOCK(Y5)
	BLOCK(Y6)
	BLOCK(Y7)
	ADDQ $32, R10
	CMPQ R10, R11
	JB   full

masked:
	// The rest: a lane takes block j only while j < nb (Y14); Y13 counts
	// the blocks from the first of these chunks on.
	TESTQ R12, R12
	JZ    done
	MOVQ  nb+40(FP), R11
	VMOVDQU (R11), Y14
	MOVQ  R10, R11
	SHRQ  $2, R11
	VMOVD R11, X13
	VPBROADCASTD X13, Y13

mloop:
	LOADT
	MBLOCK(Y0)
	MBLOCK(Y1)
	MBLOCK(Y2)
	MBLOCK(Y3)
	MBLOCK(Y4)
	MBLOCK(Y5)
	MBLOCK(Y6)
	MBLOCK(Y7)
	ADDQ $32, R10
	DECQ R12
	JNZ  mloop

done:
	MOVBLZX fin+68(FP), R11
	TESTQ   R11, R11
	JZ      store

	// The finish of every lane, as finishEnd does it. Y1: the lengths. Y4:
	// the last 4 bytes of each line, gathered from data at start+len-4.
	MOVQ    data_base+0(FP), R11
	MOVQ    starts+24(FP), R12
	VMOVDQU (R12), Y0
	MOVQ    lens+32(FP), R12
	VMOVDQU (R12), Y1
	VPADDD  Y1, Y0, Y2
	VPSUBD  fourx8<>(SB), Y2, Y2
	VPCMPEQD Y3, Y3, Y3
	VPGATHERDD Y3, (R11)(Y2*1), Y4

	// k: the tail's len%4 bytes, shifted down by 32-8*(len%4) bits (a
	// shift by 32, for no tail, gives 0, which mixes in as nothing).
	VPAND   threex8<>(SB), Y1, Y5
	VPSLLD  $3, Y5, Y5
	VMOVDQU thirtytwox8<>(SB), Y6
	VPSUBD  Y5, Y6, Y5
	VPSRLVD Y5, Y4, Y4
	MIXK(Y4)
	VPXOR   Y4, Y15, Y15

	// The length, and the finalization's avalanche.
	VPXOR   Y1, Y15, Y15
	VPSRLD  $16, Y15, Y8
	VPXOR   Y8, Y15, Y15
	VPMULLD f1x8<>(SB), Y15, Y15
	VPSRLD  $13, Y15, Y8
	VPXOR   Y8, Y15, Y15
	VPMULLD f2x8<>(SB), Y15, Y15
	VPSRLD  $16, Y15, Y8
	VPXOR   Y8, Y15, Y15

store:
	MOVQ out+72(FP), R11
	VMOVDQU Y15, (R11)
	VZEROUPPER
	RET
