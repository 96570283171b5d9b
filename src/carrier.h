/*-------------------------------------------------------------------------
 *
 * carrier.h
 *		How a message travels round the ring: copied through every queue,
 *		or by reference, placed once in the ring's dynamic shared memory area
 *		while only a reference travels (area.c).  The leader's message loops
 *		(messages.c) see only this interface.
 *
 * A loop opens a carrier for one message and one call, then, for each copy
 * it sends: put gives what to send for it; resolve turns what came back
 * into the message, checking that it is what was sent; release says the
 * loop is done with the oldest copy that came back.  Copies come back in
 * the order they were put, since the ring keeps order.
 *
 * IDENTIFICATION
 *		src/carrier.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TEST_SHM_MQ_EXT_CARRIER_H
#define TEST_SHM_MQ_EXT_CARRIER_H

#include "ring.h"

typedef struct test_shm_mq_carrier test_shm_mq_carrier;

/*
 * One way for a message to travel.
 *
 * open gets the carrier ready for a call that puts at most copies copies.
 *
 * put places the next copy, and sets *nbytes and *data to what the queues
 * are to carry for it; the copy is in flight until released.  It returns
 * false, having placed nothing, if there is no room until a copy comes
 * back; it fails if there is none in flight to make room.
 *
 * resolve takes what the leader received, returns the message it stands
 * for, of *message_size bytes, and fails if it is not what the oldest copy
 * in flight was sent as.
 *
 * release ends the oldest copy in flight; close ends the carrier.
 *
 * flushes_each says that every copy must be flushed as it is sent: true
 * where put can refuse for want of room, since a copy held back, unflushed,
 * while the leader waits for one to come back would never reach the first
 * worker.  by_reference says the message itself does not travel the queues.
 */
typedef struct test_shm_mq_carrier_method
{
	bool		flushes_each;
	bool		by_reference;
	void		(*open) (test_shm_mq_carrier *carrier, int copies);
	bool		(*put) (test_shm_mq_carrier *carrier, Size *nbytes,
						const void **data);
	const char *(*resolve) (test_shm_mq_carrier *carrier, Size nbytes,
							const void *data, Size *message_size);
	void		(*release) (test_shm_mq_carrier *carrier);
	void		(*close) (test_shm_mq_carrier *carrier);
} test_shm_mq_carrier_method;

struct test_shm_mq_carrier
{
	const test_shm_mq_carrier_method *method;
	test_shm_mq_ring *ring;
	const char *message;		/* what the call sends */
	Size		message_size;
	void	   *private_state;	/* the method's own */
};

/* The ways (carrier.c, area.c). */
extern const test_shm_mq_carrier_method test_shm_mq_copying_method;
extern const test_shm_mq_carrier_method test_shm_mq_by_reference_method;

extern void test_shm_mq_carrier_open(test_shm_mq_carrier *carrier,
									 test_shm_mq_ring *ring,
									 const char *message, Size message_size,
									 int copies);
extern void test_shm_mq_carrier_count(test_shm_mq_carrier *carrier,
									  int copies);

static inline bool
test_shm_mq_carrier_put(test_shm_mq_carrier *carrier, Size *nbytes,
						const void **data)
{
	return carrier->method->put(carrier, nbytes, data);
}

static inline const char *
test_shm_mq_carrier_resolve(test_shm_mq_carrier *carrier, Size nbytes,
							const void *data, Size *message_size)
{
	return carrier->method->resolve(carrier, nbytes, data, message_size);
}

static inline void
test_shm_mq_carrier_release(test_shm_mq_carrier *carrier)
{
	carrier->method->release(carrier);
}

static inline void
test_shm_mq_carrier_close(test_shm_mq_carrier *carrier)
{
	carrier->method->close(carrier);
}

static inline bool
test_shm_mq_carrier_flushes_each(const test_shm_mq_carrier *carrier)
{
	return carrier->method->flushes_each;
}

#endif							/* TEST_SHM_MQ_EXT_CARRIER_H */
