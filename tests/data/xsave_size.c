/* How big an XSAVE area a kernel gives. Built statically by tests/test_dut_kernel.py.
 *
 *   xsave_size ptrace     the size PTRACE_GETREGSET(NT_X86_XSTATE) fills for a stopped child: what a UML
 *                         kernel asks the host at boot (arch_init_registers) and must pass back in full
 *   xsave_size sigframe   the xstate_size the kernel wrote into this process's signal frame (fpstate's
 *                         software-reserved bytes); 0 when it saved no XSAVE area there
 *
 * In a UML guest whose kernel sizes the buffer from the host, the guest's sigframe size is the host's ptrace
 * size (arch/x86/um/signal.c copies host_fp_size bytes and says so there).
 */
#include <elf.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#define FP_XSTATE_MAGIC1 0x46505853U
#define SW_RESERVED 464 /* offset of struct _fpx_sw_bytes in the FXSAVE area */

static volatile unsigned int seen;

static void handler(int sig, siginfo_t *info, void *context)
{
	const unsigned char *fp = (const unsigned char *)((ucontext_t *)context)->uc_mcontext.fpregs;
	unsigned int magic, size;

	(void)sig; (void)info;
	memcpy(&magic, fp + SW_RESERVED, 4);
	memcpy(&size, fp + SW_RESERVED + 16, 4); /* magic1, extended_size, xfeatures (8), xstate_size */
	seen = magic == FP_XSTATE_MAGIC1 ? size : 0;
}

static int sigframe(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO;
	if (sigaction(SIGUSR1, &sa, NULL) || raise(SIGUSR1))
		return perror("sigframe"), 1;
	printf("sigframe %u\n", seen);
	return 0;
}

static int traced(void)
{
	static unsigned char buffer[2 << 20];
	struct iovec iov = { buffer, sizeof(buffer) };
	int status;
	pid_t child = fork();

	if (child == 0) {
		ptrace(PTRACE_TRACEME, 0, NULL, NULL);
		raise(SIGSTOP);
		_exit(0);
	}
	if (child < 0 || waitpid(child, &status, 0) != child)
		return perror("fork"), 1;
	if (ptrace(PTRACE_GETREGSET, child, (void *)NT_X86_XSTATE, &iov))
		return perror("PTRACE_GETREGSET"), 1;
	printf("ptrace %zu\n", iov.iov_len);
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "sigframe"))
		return sigframe();
	if (argc == 2 && !strcmp(argv[1], "ptrace"))
		return traced();
	fprintf(stderr, "usage: %s sigframe|ptrace\n", argv[0]);
	return 2;
}
