/*
 * Stand-in bcryptprimitives.dll for running tikrelay.exe under Wine 8, used only by
 * scripts/test-windows.sh. Rust's standard library (1.78 and later) gets its random bytes from
 * ProcessPrng in bcryptprimitives.dll, which every supported Windows has but Wine 8 does not,
 * so the exe would fail to load there. This DLL exports ProcessPrng and forwards it to
 * RtlGenRandom (exported by advapi32 as SystemFunction036), which Wine implements with the
 * host's random source. Never ship it: real Windows has its own.
 *
 * Build: x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll wine-bcryptprimitives.c
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    /* RtlGenRandom takes a 32-bit length; ProcessPrng a pointer-sized one. */
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
