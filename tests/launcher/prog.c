/* The program the launcher tests run: prints its argv on one line
 * ("argv0=NAME [arg] [arg]...") and exits with status N when called as
 * "prog exit N". Built dynamically and statically by run.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char** argv) {
  printf("argv0=%s", argv[0]);
  for (int i = 1; i < argc; i++) printf(" [%s]", argv[i]);
  printf("\n");
  free(malloc(100));
  if (argc == 3 && strcmp(argv[1], "exit") == 0) return atoi(argv[2]);
  return 0;
}
