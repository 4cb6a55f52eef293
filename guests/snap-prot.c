/* snap-prot: the snapshot test rounds (snap-rounds.h) in 32-bit protected mode. */
#include "snap-rounds.h"
