/* runtime/main.c: the main() of every program chiralc builds.
 *
 * Alone in its file so that only a program that lacks a main (a compiled model) pulls
 * it, and with it the reference to rt_model_get, from the static library. */
#include "runtime/rt.h"

int main(int argc, char **argv) { return rt_main(rt_model_get(), argc, argv); }
