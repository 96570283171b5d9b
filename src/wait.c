/*-------------------------------------------------------------------------
 *
 * wait.c
 *		Waiting for a queue to make progress, for leader and workers alike.
 *
 * Both sides drive their queues with non-blocking shm_mq calls and come here
 * when a pass made no progress.  The "block" strategy sleeps on the process
 * latch at once, which is what shm_mq's own blocking calls do: a peer that
 * reads or writes a queue sets our latch, so no wake-up is lost.
 *
 * IDENTIFICATION
 *		src/wait.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/latch.h"
#include "pgstat.h"

#include "wait.h"

/*
 * Prepare a waiter for one loop over the queues.
 */
void
test_shm_mq_waiter_init(test_shm_mq_waiter *waiter,
						test_shm_mq_wait_strategy strategy,
						int spin_budget_us)
{
	waiter->strategy = strategy;
	waiter->spin_budget_us = spin_budget_us;
}

/*
 * Wait until a peer may have made progress possible.
 *
 * Returns true if we slept on the latch, which is also when the caller should
 * look at anything that wakes it other than its data queues.  Interrupts are
 * serviced before returning.
 */
bool
test_shm_mq_wait(test_shm_mq_waiter *waiter)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1L,
					 PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	return true;
}

/*
 * Tell the waiter that the last pass over the queues made progress.
 */
void
test_shm_mq_waiter_progress(test_shm_mq_waiter *waiter)
{
}
