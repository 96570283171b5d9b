/*-------------------------------------------------------------------------
 *
 * relay.h
 *		A ring worker's relay: what it knows about its place in the ring
 *		while it copies messages from the queue before it to the queue after
 *		it.  Private to worker.c and relay.c.
 *
 * IDENTIFICATION
 *		src/relay.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TEST_SHM_MQ_EXT_RELAY_H
#define TEST_SHM_MQ_EXT_RELAY_H

#include "storage/dsm.h"
#include "storage/shm_mq.h"
#include "storage/shm_toc.h"

#include "test_shm_mq_ext.h"

/* What the relay loop needs to know. */
typedef struct test_shm_mq_relay
{
	test_shm_mq_header *header;
	int			worker_number;
	dsm_segment *segment;
	shm_mq	   *input_queue;
	MemoryContext input_context;	/* holds input and its buffer */
	Size		largest_received;	/* since the ring last went idle */
	shm_mq_handle *input;
	shm_mq_handle *output;
	test_shm_mq_waiter waiter;
	test_shm_mq_wait_slot *receiver;	/* the next process's wait slot */
	bool		batch;			/* hold messages back where it pays, see
								 * test_shm_mq_relay_messages() */
	bool		idle;			/* reported idle: the ring has no call */
} test_shm_mq_relay;

extern void test_shm_mq_relay_start(test_shm_mq_relay *relay,
									test_shm_mq_header *header,
									int worker_number,
									dsm_segment *segment, shm_toc *toc,
									test_shm_mq_wait_slot *slot);
extern void test_shm_mq_relay_messages(test_shm_mq_relay *relay);

#endif							/* TEST_SHM_MQ_EXT_RELAY_H */
