"""`undertow run` with bpftrace's value types on this kernel (issue 16): arrays and whole structs
read from a process the test builds, held in variables, maps, keys and tuples, printed as
bpftrace 0.17 prints them; ++/-- as values; buffers."""

import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf(2))")

TARGET_C = r"""
struct A { int x[4]; };
struct B { int y[2][2]; };
struct Foo { int m; int n; };
struct Bits { unsigned int a:4, b:8, c:3, d:1, e:16; };
__attribute__((noinline)) void test_struct(struct A *a, struct B *b, struct Foo *f, struct Bits *bits) {
  __asm__ volatile("" ::: "memory");
}
int main(void) {
  struct A a = {{1, 2, 3, 4}};
  struct B b = {{{5, 6}, {7, 8}}};
  struct Foo f = {2, 3};
  struct Bits bits = {1, 2, 5, 0, 65535};
  test_struct(&a, &b, &f, &bits);
  return 0;
}
"""

STRUCTS = ("struct A { int x[4]; } struct B { int y[2][2]; } struct Foo { int m; int n; } "
           "struct Bits { unsigned int a:4, b:8, c:3, d:1, e:16; } ")


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the uprobe target")
    d = tmp_path_factory.mktemp("types")
    src = d / "t.c"
    src.write_text(TARGET_C)
    exe = str(d / "types_target")
    subprocess.run(["gcc", "-g", "-O0", "-no-pie", "-o", exe, str(src)], check=True)
    return exe


def run(target, body):
    prog = STRUCTS + f"uprobe:{target}:test_struct {{ {body} exit(); }}"
    res = subprocess.run([sys.executable, "-m", "undertow", "run", "-c", target, "-e", prog],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    return res.stdout


def test_arrays_structs_and_tuples_print_as_bpftrace_prints_them(target):
    out = run(target, "@a = ((struct A *) arg0)->x; @b = ((struct B *) arg1)->y; @s = *(struct Foo *) arg2; "
                      "@k[*(struct Foo *) arg2, 42] = 0; @x[((struct A *) arg0)->x] = 1; "
                      "@t = (1, ((struct A *) arg0)->x, *(struct Foo *) arg2);")
    assert "@a: [1,2,3,4]\n" in out
    assert "@b: [[5,6],[7,8]]\n" in out
    assert "@s: { .m = 2, .n = 3 }\n" in out
    assert "@k[{.m=2,.n=3}, 42]: 0\n" in out
    assert "@x[[1,2,3,4]]: 1\n" in out
    assert "@t: (1, [1,2,3,4], { .m = 2, .n = 3 })\n" in out


def test_values_are_indexed_where_they_are_held(target):
    out = run(target, "$a = ((struct A *) arg0)->x; @m[0] = ((struct B *) arg1)->y; $s = *(struct Foo *) arg2; "
                      "$bits = (struct Bits *) arg3; "
                      "printf(\"%d %d %d %d %d %d\\n\", $a[1], @m[0][1][0], $s.n, $bits->b, $bits->c, $bits->e); "
                      "if (((struct A *) arg0)->x == $a) { printf(\"equal\\n\"); }")
    assert "2 7 3 2 5 65535\n" in out
    assert "equal\n" in out


def test_increments_as_values_and_buffers(target):
    out = run(target, "$x = 10; printf(\"%d %d %d %d\\n\", $x++, ++$x, $x--, --$x); @y = 5; "
                      "printf(\"%d %d\\n\", @y++, --@y); $p = (struct Foo *) arg2; printf(\"%d\\n\", ($p++)->m); "
                      "printf(\"%r|%rx|%rh\\n\", buf(\"hi\", 2), buf(\"Hi\", 3), buf(\"Hi\", 2)); @u = (uint64) 0; "
                      "printf(\"%d %d\\n\", @u > -1, @u < 1);")
    assert "10 12 12 10\n" in out
    assert "5 5\n" in out
    assert "2\n" in out
    assert "hi|\\x48\\x69\\x00|48 69\n" in out
    assert "0 1\n" in out
