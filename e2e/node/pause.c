/*
 * pause: the sandbox container of every pod (containerd's sandbox_image). It holds the pod's
 * namespaces open and does nothing else: as PID 1 of the pod it reaps any child that gets
 * reparented to it, and SIGINT/SIGTERM end it with status 0 so a pod stops cleanly.
 *
 * Build: gcc -static -Os -s -o pause pause.c   (scripts/images.sh does, for meshctl.dev/e2e/pause)
 */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) {
	(void)sig;
	_exit(0);
}

static void reap(int sig) {
	(void)sig;
	/* Several children may have exited behind one SIGCHLD. */
	while (waitpid(-1, NULL, WNOHANG) > 0) {
	}
}

static int fail(const char *msg) {
	(void)!write(2, msg, strlen(msg));
	return 1;
}

static int on(int sig, void (*handler)(int), int flags) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = handler;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	return sigaction(sig, &sa, NULL);
}

int main(int argc, char **argv) {
	(void)argv;
	if (argc > 1) {
		return fail("pause: takes no arguments\n");
	}
	/* PID 1 ignores signals it has no handler for, so without these the kubelet's SIGTERM
	 * would go unheard and every pod stop would wait for SIGKILL. */
	if (on(SIGINT, stop, 0) < 0 || on(SIGTERM, stop, 0) < 0 ||
	    on(SIGCHLD, reap, SA_NOCLDSTOP | SA_RESTART) < 0) {
		return fail("pause: sigaction failed\n");
	}
	for (;;)
		pause();
}
