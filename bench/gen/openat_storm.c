/* openat/close storm: N calls as fast as possible, or at RATE calls/s.
 * usage: openat_storm N [RATE]   (prints elapsed seconds) */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	double rate = argc > 2 ? atof(argv[2]) : 0;
	double t0 = now();
	for (long i = 0; i < n; i++) {
		int fd = openat(AT_FDCWD, "/dev/null", O_RDONLY);
		if (fd >= 0) close(fd);
		if (rate > 0) {
			double due = t0 + (i + 1) / rate;
			while (now() < due) { struct timespec s = {0, 200000}; nanosleep(&s, NULL); }
		}
	}
	printf("%.6f\n", now() - t0);
	return 0;
}
