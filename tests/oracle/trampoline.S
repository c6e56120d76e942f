// Native side of the oracle: enter a test sequence with every register
// taken from the state block at 0x700000 and come back with all of them
// saved there. The block and the code page are mapped at fixed addresses by
// native_runner.cpp in a child process.
//
// Block layout: 0 gpr_in[16], 128 rflags_in, 136 entry rip, 144 host rsp,
// 152 DS/ES selector,
// 256 gpr_out[16], 384 rflags_out, 512 fxsave_in, 1024 fxsave_out.
    .text
    .globl kiln_oracle_enter
    .type kiln_oracle_enter, @function
kiln_oracle_enter:
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    movq %rsp, 0x700000+144
    // Linux runs 64-bit processes with null DS/ES; 32-bit cases need the
    // flat user data selector there, 16-bit cases an LDT data segment.
    movl 0x700000+152, %eax
    movl %eax, %ds
    movl %eax, %es
    fxrstor64 0x700000+512
    pushq 0x700000+128
    popfq
    movq 0x700000+0, %rax
    movq 0x700000+8, %rcx
    movq 0x700000+16, %rdx
    movq 0x700000+24, %rbx
    movq 0x700000+40, %rbp
    movq 0x700000+48, %rsi
    movq 0x700000+56, %rdi
    movq 0x700000+64, %r8
    movq 0x700000+72, %r9
    movq 0x700000+80, %r10
    movq 0x700000+88, %r11
    movq 0x700000+96, %r12
    movq 0x700000+104, %r13
    movq 0x700000+112, %r14
    movq 0x700000+120, %r15
    movq 0x700000+32, %rsp
    jmp *0x700000+136

    .globl kiln_oracle_exit
    .type kiln_oracle_exit, @function
kiln_oracle_exit:
    movq %rax, 0x700000+256+0
    movq %rcx, 0x700000+256+8
    movq %rdx, 0x700000+256+16
    movq %rbx, 0x700000+256+24
    movq %rsp, 0x700000+256+32
    movq %rbp, 0x700000+256+40
    movq %rsi, 0x700000+256+48
    movq %rdi, 0x700000+256+56
    movq %r8, 0x700000+256+64
    movq %r9, 0x700000+256+72
    movq %r10, 0x700000+256+80
    movq %r11, 0x700000+256+88
    movq %r12, 0x700000+256+96
    movq %r13, 0x700000+256+104
    movq %r14, 0x700000+256+112
    movq %r15, 0x700000+256+120
    movq 0x700000+144, %rsp
    pushfq
    popq %rax
    movq %rax, 0x700000+384
    // Back to C++ with alignment checking (RFLAGS.AC) off.
    andq $-0x40001, %rax
    pushq %rax
    popfq
    fxsave64 0x700000+1024
    cld
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    ret
    .section .note.GNU-stack,"",@progbits
