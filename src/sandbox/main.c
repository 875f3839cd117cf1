/* main.c — placeholder until ctct-sandbox lands (issue 2). */
#include "cts_util.h"

#include <stdio.h>

int main(void)
{
    fprintf(stderr, "ctct-sandbox: not implemented yet\n");
    return CTS_EX_SOFTWARE;
}
