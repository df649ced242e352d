/*
 * Start-up for a typical Cortex-M4F part: the vector table, and a reset
 * handler that enables the FPU, copies .data from flash, zeroes .bss and
 * calls main(). The symbols come from m4.ld. Handlers other than reset park
 * the core; a real port replaces them with the vendor's.
 */
#include <stdint.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);
void Reset_Handler(void);
void Default_Handler(void);

/* Interrupt lines of a typical M4 (82 on an STM32F405): the table's real size. */
#define PL_M4_IRQS 82

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)

void Default_Handler(void)
{
    for (;;) {
    }
}

void Reset_Handler(void)
{
    /* CP10 and CP11 full access: -mfloat-abi=hard code may touch the FPU. */
    SCB_CPACR |= 0xFu << 20;
    __asm volatile("dsb\n\tisb");

    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata)
        *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;)
        *dst++ = 0;
    main();
    for (;;) {
    }
}

typedef void (*pl_vector)(void);

__attribute__((section(".isr_vector"), used)) const pl_vector pl_vectors[16 + PL_M4_IRQS] = {
    [0] = (pl_vector)&_estack,
    [1] = Reset_Handler,
    [2 ... 15 + PL_M4_IRQS] = Default_Handler,
};
