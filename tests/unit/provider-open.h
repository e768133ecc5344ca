/* provider-open.h - open and close one provider with the default settings, for the providers' unit tests. */
#pragma once

#include "provider.h"

typedef struct {
        const jl_provider_ops *ops;
        jl_channels ch;
        jl_notes notes;
        void *state;
        int r; /* what open returned */
} opened;

static inline void provider_open(const jl_provider_ops *ops, opened *o)
{
        *o = (opened){.ops = ops};
        jl_provider_config cfg;
        jl_provider_config_default(&cfg);
        o->r = ops->open(&cfg, &o->ch, &o->notes, &o->state);
}

static inline void provider_close(opened *o)
{
        if (o->r == 0)
                o->ops->close(o->state);
        jl_channels_free(&o->ch);
        jl_notes_free(&o->notes);
}
