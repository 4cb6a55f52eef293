/* snap-long: the snapshot test rounds (snap-rounds.h) in 64-bit long mode. */
#include "snap-rounds.h"
