/* main.c — placeholder until the CLI lands (issue 3). */
#include "cts_util.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("ctct-sync %s\n", CTS_VERSION);
        return CTS_EX_OK;
    }
    cts_log_error("not implemented yet");
    return CTS_EX_SOFTWARE;
}
