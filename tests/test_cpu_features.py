"""kerasnets.bench.local.cpu_features: the int8 dot-product flags read from /proc/cpuinfo text
(issue 16 item 3). The samples are the lines the Linux kernel prints (arch/x86/kernel/cpu/proc.c
writes "flags", arch/arm64/kernel/cpuinfo.c writes "Features")."""

from kerasnets.bench.local import cpu_features, host_cpu_line

X86_VNNI = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu vme avx2 avx512f avx512_bf16 avx512_vnni avx512_bitalg
bugs\t\t: sysret_ss_attrs

processor\t: 1
flags\t\t: fpu vme avx2 avx512f avx512_bf16 avx512_vnni avx512_bitalg
"""

X86_NO_DOT = """processor\t: 0
model name\t: Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz
flags\t\t: fpu vme sse4_2 avx avx2 fma
"""

X86_AVX_VNNI = """processor\t: 0
model name\t: 12th Gen Intel(R) Core(TM) i7-1260P
flags\t\t: fpu avx2 avx_vnni fma
"""

ARM_DOT_I8MM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm \
jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm i8mm bf16
CPU implementer\t: 0x41
"""

ARM_V8_0 = """processor\t: 0
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
"""


def test_x86_flags_give_the_vnni_extensions_present():
    assert cpu_features(X86_VNNI) == ["avx512_vnni"]
    assert cpu_features(X86_AVX_VNNI) == ["avx_vnni"]
    # avx512f, avx512_bf16, avx2 are not int8 dot products.
    assert cpu_features(X86_NO_DOT) == []


def test_arm_features_give_sdot_and_i8mm():
    assert cpu_features(ARM_DOT_I8MM) == ["asimddp", "i8mm"]
    assert cpu_features(ARM_V8_0) == []


def test_no_flags_line_is_unknown_not_none_present():
    assert cpu_features("") is None
    assert cpu_features("processor\t: 0\nmodel name\t: something\n") is None


def test_host_line_names_cpu_flags_and_load():
    line = host_cpu_line()
    assert line.startswith("CPU: ") and "int8 dot products: " in line and "load average" in line
