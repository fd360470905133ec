/* Test-only stand-in for bcryptprimitives.dll, for running arka.exe under Wine 8.
 *
 * Rust's std (1.78+) imports ProcessPrng from bcryptprimitives.dll, which Wine 8 does not
 * provide, so the loader refuses to start the exe. This DLL exports ProcessPrng and
 * forwards it to BCryptGenRandom with the system-preferred RNG. Do not ship it: real
 * Windows (10 and later) has the genuine DLL. scripts/build-windows.sh --wine builds it
 * and copies it into the Wine prefix's system32.
 */
#include <windows.h>
#include <bcrypt.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE; /* the real ProcessPrng never fails */
}
