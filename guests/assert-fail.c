/*
 * assert-fail: a failing GUEST_ASSERT_EQ. The host receives ASSERT_FAIL with
 * file "assert-fail.c", the line of the assertion below, msg "1 + 1",
 * wanted 3 and got 2, and ends the run with its "guest assertion failed"
 * status.
 */
#include "ucall.h"

int main(void)
{
	GUEST_ASSERT_EQ(3, 1 + 1);	/* ASSERT_LINE: tests may grep for this marker */
	ucall_done();
}
