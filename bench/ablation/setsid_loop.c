/* Forks N children that each call setsid() and exit: the setsid programs' workload. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 20000;
    for (long i = 0; i < n; i++) {
        pid_t child = fork();
        if (child == 0) {
            setsid();
            _exit(0);
        }
        waitpid(child, 0, 0);
    }
    return 0;
}
