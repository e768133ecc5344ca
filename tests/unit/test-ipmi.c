/* test-ipmi.c - the ipmi provider's unavailable paths: no IPMI device, and a /dev/ipmi0 that is not an IPMI
 * device at all. Both run in a private mount namespace with a tmpfs over /dev, so that a node with a real
 * BMC is left alone and gives the same answers (root only: without it, the no-device case runs only where
 * /dev/ipmi0 is absent anyway). */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "provider.h"
#include "provider-open.h"
#include "tap.h"

static void do_open(opened *o)
{
        provider_open(&jl_provider_ipmi, o);
}

static bool has_note(const opened *o, const char *text)
{
        for (size_t i = 0; i < o->notes.n; i++)
                if (strcmp(o->notes.items[i].subject, "ipmi") == 0 && strstr(o->notes.items[i].reason, text))
                        return true;
        for (size_t i = 0; i < o->notes.n; i++)
                printf("#   note %s: %s\n", o->notes.items[i].subject, o->notes.items[i].reason);
        return false;
}

int main(void)
{
        bool private_dev = unshare(CLONE_NEWNS) == 0 &&
                           mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) == 0 &&
                           mount("tmpfs", "/dev", "tmpfs", 0, "mode=0755") == 0;
        if (!private_dev && access("/dev/ipmi0", F_OK) == 0) {
                printf("1..0 # SKIP this node has /dev/ipmi0 and a private /dev needs root\n");
                return 0;
        }

        bool registered = false;
        for (const jl_provider_ops *const *p = jl_providers; *p; p++)
                registered |= *p == &jl_provider_ipmi;
        ok(registered, "ipmi is in the registry");

        opened o;
        do_open(&o);
        is_int(o.r, -ENOENT, "no IPMI device: unavailable (-ENOENT)");
        is_int(o.ch.n, 0, "no IPMI device: no channel");
        ok(has_note(&o, "modprobe ipmi_si ipmi_devintf"), "no IPMI device: the note says what to load");
        provider_close(&o);

        if (!private_dev) {
                printf("ok %d # SKIP a fake /dev/ipmi0 needs a private /dev (root)\n", ++tap_n);
                return tap_done();
        }
        /* Something that is not an IPMI device sits at /dev/ipmi0: an error with a reason, no crash, no hang
         */
        int fd = open("/dev/ipmi0", O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        ok(fd >= 0, "a regular file at /dev/ipmi0");
        if (fd >= 0)
                close(fd);
        do_open(&o);
        ok(o.r < 0, "not an IPMI device: unavailable (%d)", o.r);
        is_int(o.ch.n, 0, "not an IPMI device: no channel");
        ok(o.notes.n >= 1 && strstr(o.notes.items[0].reason, "/dev/ipmi0"),
           "not an IPMI device: a note naming it");
        if (o.notes.n)
                printf("#   %s\n", o.notes.items[0].reason);
        provider_close(&o);
        return tap_done();
}
