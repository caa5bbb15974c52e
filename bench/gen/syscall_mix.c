/* N rounds of openat + close + K getppid: a syscall-heavy program of which a tracer
 * filtering on openat sees one call in K + 2.
 * usage: syscall_mix N K   (prints elapsed seconds) */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 10000;
	long k = argc > 2 ? atol(argv[2]) : 10;
	double t0 = now();
	for (long i = 0; i < n; i++) {
		int fd = openat(AT_FDCWD, "/dev/null", O_RDONLY);
		if (fd >= 0) close(fd);
		for (long j = 0; j < k; j++) getppid();
	}
	printf("%.6f\n", now() - t0);
	return 0;
}
