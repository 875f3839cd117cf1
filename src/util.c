/* util.c — the run's random generator (cts_util.h). */
#include "cts_util.h"

#include <uv.h>

void cts_rng_init(struct cts_rng *r)
{
    if (cts_random_bytes(&r->s, sizeof(r->s)) != 0 || r->s == 0)
        r->s = 0x9e3779b97f4a7c15ULL ^ (uint64_t)uv_hrtime();
}

uint32_t cts_rng_next32(struct cts_rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return (uint32_t)((r->s * 0x2545F4914F6CDD1DULL) >> 32);
}
