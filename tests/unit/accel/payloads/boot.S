# Boot payload for interp_system_test: reset vector -> real mode (IVT
# interrupt) -> protected mode -> PAE paging -> long mode -> #UD and #PF
# through the IDT -> STI; HLT woken by an external interrupt -> HLT.
# Progress is reported as characters on port 0xE9. Rebuild boot.inc with
# tests/unit/accel/payloads/build.sh after editing.
    .text
    .code16
    .globl _start
_start:
    cli
    xorw %ax, %ax
    movw %ax, %ds
    movw %ax, %ss
    movw $0x7000, %sp
    movb $'R', %al
    outb %al, $0xe9
    # real-mode software interrupt through the IVT: vector 0x41
    movw $rm_handler, 0x41*4
    movw $0, 0x41*4+2
    int $0x41
    lgdtl gdt_desc
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x08, $pm32
rm_handler:
    movb $'V', %al
    outb %al, $0xe9
    iret

    .code32
pm32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl $0x70000, %esp
    movb $'P', %al
    outb %al, $0xe9
    movl $0x10000, %edi
    xorl %eax, %eax
    movl $3*1024, %ecx
    cld
    rep stosl
    movl $0x11003, 0x10000
    movl $0x12003, 0x11000
    movl $0x12000, %edi
    movl $0x83, %eax
    movl $512, %ecx
1:  movl %eax, (%edi)
    addl $0x200000, %eax
    addl $8, %edi
    loop 1b
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl $0x10000, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000000, %eax
    movl %eax, %cr0
    ljmpl $0x18, $lm64

    .code64
lm64:
    movb $'L', %al
    outb %al, $0xe9
    movq $0x80000, %rsp
    leaq ud_handler(%rip), %rax
    movq $6, %rsi
    call set_gate
    leaq pf_handler(%rip), %rax
    movq $14, %rsi
    call set_gate
    leaq irq_handler(%rip), %rax
    movq $0x20, %rsi
    call set_gate
    lidtq idt_desc(%rip)
    ud2
    movb $'A', %al
    outb %al, $0xe9
    movq 0x40000000, %rax
    movb $'B', %al
    outb %al, $0xe9
    sti
    hlt
    movb $'D', %al
    outb %al, $0xe9
    cli
    hlt
set_gate:
    movq %rsi, %rdx
    shlq $4, %rdx
    addq $0x20000, %rdx
    movw %ax, (%rdx)
    movw $0x18, 2(%rdx)
    movw $0x8e00, 4(%rdx)
    shrq $16, %rax
    movw %ax, 6(%rdx)
    shrq $16, %rax
    movl %eax, 8(%rdx)
    movl $0, 12(%rdx)
    ret
ud_handler:
    movb $'U', %al
    outb %al, $0xe9
    addq $2, (%rsp)
    iretq
pf_handler:
    popq %rbx
    movq %cr2, %rcx
    movb $'F', %al
    outb %al, $0xe9
    addq $8, (%rsp)
    iretq
irq_handler:
    movb $'I', %al
    outb %al, $0xe9
    iretq

    .p2align 3
gdt:
    .quad 0
    .quad 0x00cf9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0x00209a0000000000
gdt_desc:
    .word 31
    .long gdt
idt_desc:
    .word 4095
    .quad 0x20000
