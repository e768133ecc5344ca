/* placeholder until config.c lands */ extern int joule_shared_placeholder; int joule_shared_placeholder;
