/* ProcessPrng for wine 8, which lacks it: Go 1.22 and later load it from
 * bcryptprimitives.dll at start-up and abort without it. It fills the
 * buffer from RtlGenRandom (SystemFunction036 in advapi32), which wine has.
 * Built by the Windows lane (emulator-tests/winlane) with mingw-w64. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
	while (len > 0) {
		ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
		if (!SystemFunction036(data, n))
			return FALSE;
		data += n;
		len -= n;
	}
	return TRUE;
}
