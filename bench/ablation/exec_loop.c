/* Forks N children that each exec PROGRAM (argv[2]) and exit: the exec and exit programs'
 * workload. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 5000;
    char *program = argc > 2 ? argv[2] : "/bin/true";
    char *args[] = {program, 0};
    for (long i = 0; i < n; i++) {
        pid_t child = fork();
        if (child == 0) {
            execv(program, args);
            _exit(127);
        }
        waitpid(child, 0, 0);
    }
    return 0;
}
