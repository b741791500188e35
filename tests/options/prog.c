/* A program for the option tests (errfile.sh, verbose.sh), run with a hardheap
 * library in LD_PRELOAD: it knows nothing of hardheap and calls malloc and
 * free as any program does. It prints "pid N" first, so that the scripts
 * can name the error file the PID was put into.
 *
 *   prog ok                    nothing wrong: prints "ok"
 *   prog double_free           frees a block twice, then prints "survived"
 *   prog foreign_free          frees a pointer malloc did not return (the
 *                              default library reports it and goes on)
 *   prog fd2_closed            says whether fd 2 is closed, then double_free
 *   prog reopen SUBSTR DECOY   puts the file DECOY on the descriptor whose
 *                              /proc/self/fd link contains SUBSTR (the error
 *                              file), as a daemon that closes every
 *                              descriptor and opens its own may, then
 *                              double_free */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char not_from_malloc[64];

static void double_free(void) {
  char* volatile p = malloc(40);
  free(p);
  free(p);
  puts("survived");
}

static int reopen(const char* substr, const char* decoy) {
  for (int fd = 3; fd < 4096; fd++) {
    char link[64], target[4096];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n < 0) continue;
    target[n] = 0;
    if (strstr(target, substr) == NULL) continue;
    printf("error file on fd %d\n", fd);
    close(fd);
    int other = open(decoy, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (other < 0 || (other != fd && dup2(other, fd) != fd)) {
      perror("decoy");
      return 1;
    }
    if (other != fd) close(other);
    fflush(stdout);
    double_free();
    return 0;
  }
  puts("no descriptor of the error file found");
  return 1;
}

int main(int argc, char** argv) {
  printf("pid %ld\n", (long)getpid());
  fflush(stdout);
  const char* what = argc > 1 ? argv[1] : "ok";
  if (strcmp(what, "ok") == 0) {
    char* volatile p = malloc(100);
    free(p);
    puts("ok");
  } else if (strcmp(what, "double_free") == 0) {
    double_free();
  } else if (strcmp(what, "foreign_free") == 0) {
    free(not_from_malloc + 16);
    puts("survived");
  } else if (strcmp(what, "fd2_closed") == 0) {
    puts(fcntl(2, F_GETFD) < 0 ? "fd 2 closed" : "fd 2 open");
    fflush(stdout);
    double_free();
  } else if (strcmp(what, "reopen") == 0 && argc == 4) {
    return reopen(argv[2], argv[3]);
  } else {
    fprintf(stderr, "usage: prog ok|double_free|foreign_free|fd2_closed|reopen SUBSTR DECOY\n");
    return 2;
  }
  return 0;
}
