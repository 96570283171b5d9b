# 160_zero_copy.pl
#
# Proves what test_shm_mq_ext.zero_copy_min_bytes promises: a message at
# least that long is placed once in the ring's dynamic shared memory area,
# only a reference travels the queues, and the area goes with the ring.
#
#  - the leak checks see the area's own segments: while a zero-copy call
#    holds a message of 65 MiB (more than posix_min's 64MB of main shared
#    memory, so a real segment under every setting), a new segment at least
#    that large is seen;
#  - 16 MiB messages (of varied bytes) go through 64 KiB queues, copying and
#    by reference, for test_shm_mq and test_shm_mq_pipelined (verify true),
#    through 1 and 4 workers, and pipelined through none; test_shm_mq_bench
#    calls of the same shapes send every byte by reference exactly when the
#    message reaches the threshold, and none otherwise, with one or two
#    16 MiB messages in flight;
#  - a kept ring serves zero-copy calls call after call, of different sizes,
#    copying and by reference, with the same workers; a cancel on it takes
#    it down, its area included; idle, it holds no segment of the area, which
#    went with the call that made it (where the server gives the extension
#    its shared state, which keeping needs);
#  - the bound at its edge, under each wait strategy, read from
#    test_shm_mq_bench's most_in_flight (the most copies out at once of
#    test_shm_mq_pipelined's pipeline, run unverified): with 64 KiB queues
#    and 4 workers (bound 320 KiB), messages of 81920 bytes are at most
#    exactly 4 in flight, of 81921 exactly 3, of 163840 and 163841 (bound two
#    messages) exactly 2, of 1 MiB exactly 2 (bound 2 MiB); one-byte messages
#    through 1 MiB queues never more than 65536, and under the adaptive wait
#    exactly that;
#  - faults on the zero-copy path: statement_timeout firing mid-pipeline
#    over 50 calls, cancels (SIGINT and pg_cancel_backend) at random moments
#    of 40 calls, a worker terminated mid-call (first, middle and last, as
#    in 010_worker_errors.pl: 57P01 with the worker's context), the leader
#    terminated mid-pipeline and at random moments of its start: no worker
#    is left when a call returns, no segment (the area's included) after
#    each, and the same session's next zero-copy call succeeds, a
#    test_shm_mq_bench call of its shape by reference.  The counts of what
#    was left are noted as "leak count: ...";
#  - an area that cannot get a segment, with nothing in flight, fails the
#    call with 53200, the message's size and the reason, and leaves nothing
#    (not under sysv, whose segments no file size limit bounds).
#
# Under posix_min, an area's segments small enough to be carved from main
# shared memory are out of sight of every leak check; only those too large
# for it, such as the 65 MiB one above, can be seen there.  The other
# settings see them all.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Utils;
use Test::More;
use TestShmMq;

my $queue_size = 65536;
my $mib        = 1048576;

# The threshold the zero-copy calls run with, as set and in bytes.
my $zero_copy_setting = '64kB';
my $zero_copy_min     = 65536;

# The most references a zero-copy pipeline keeps in flight (area.c).
my $max_references = 65536;

my $timeout_calls   = 50;
my $cancel_calls    = 40;
my $terminate_calls = 6;

my $node            = new_node('zero_copy');
my $segments_before = dsm_segments($node);
my $control         = TestShmMq::Session->new($node);

# A message of 16 MiB whose every 32 bytes differ from their neighbours,
# stored uncompressed so that reading it costs no more than a copy.
my $message_bytes = 16 * $mib;
$node->safe_psql(
	'postgres', q{
	CREATE TABLE message (body text);
	ALTER TABLE message ALTER body SET STORAGE EXTERNAL;
	INSERT INTO message
	SELECT string_agg(md5(i::text), '' ORDER BY i)
	FROM generate_series(1, 524288) i});
is($node->safe_psql('postgres', 'SELECT octet_length(body) FROM message'),
	$message_bytes, 'the test message is 16 MiB');

# Run statements in a session, and die unless each is silent.
sub configure
{
	my ($session, @statements) = @_;

	foreach my $sql (@statements)
	{
		my $result = $session->query($sql);
		die "$sql: $result->{stderr}" if $result->{stderr} ne '';
	}
	return $session;
}

# A session whose calls send messages of 64 kB and more by reference.
sub zero_copy_session
{
	return configure(TestShmMq::Session->new($node),
		"SET test_shm_mq_ext.zero_copy_min_bytes = '$zero_copy_setting'");
}

# The SQLSTATE a call ended with, or "ok".
sub outcome
{
	my ($result) = @_;
	my $error = parse_error($result->{stderr});

	return 'no end' unless $result->{finished};
	return defined $error ? $error->{sqlstate} : 'ok';
}

# Run a call, assert it succeeds without a word, and return its result.
sub succeeds
{
	my ($session, $sql, $label) = @_;
	my $result = $session->query($sql);

	local $Test::Builder::Level = $Test::Builder::Level + 1;

	is($result->{stderr}, '', "$label: succeeds");
	return $result;
}

# Run test_shm_mq_bench in a session: queue size, message size, repeat count,
# workers, mode, and a wait strategy or, undef, the session's.  Returns its
# stderr and, when it returned its row, bytes, by_reference
# (bytes_by_reference) and most (most_in_flight), as a hash reference.
sub bench
{
	my ($session, $queue, $size, $repeats, $nworkers, $mode, $strategy) = @_;
	my $result = $session->query(
		    'SELECT bytes, bytes_by_reference, most_in_flight '
		  . "FROM test_shm_mq_bench($queue, $size, $repeats, $nworkers, '$mode', "
		  . (defined $strategy ? "'$strategy'" : 'NULL')
		  . ')');
	my %row = (stderr => $result->{stderr});

	@row{qw(bytes by_reference most)} = ($1, $2, $3)
	  if $result->{stdout} =~ /^(\d+)\|(\d+)\|(\d+)$/;
	return \%row;
}

# How a bench call's messages went: "by reference" (every byte), "copied"
# (none), or what else came of it, a word on stderr included.
sub went
{
	my ($row) = @_;

	return "complained: $row->{stderr}" if $row->{stderr} ne '';
	return 'no row' unless defined $row->{bytes};
	return 'by reference'
	  if $row->{bytes} > 0 && $row->{by_reference} == $row->{bytes};
	return 'copied' if $row->{by_reference} == 0;
	return "$row->{by_reference} of $row->{bytes} bytes by reference";
}

# A zero-copy pipeline, one message of 1 MiB, and a bench call of its shape,
# which must succeed and go by reference: the proof that a session is still
# usable after a fault.  Returns what went wrong, if anything.
sub zero_copy_problems
{
	my ($session) = @_;
	my $result = $session->query(
		"SELECT test_shm_mq_pipelined($queue_size, repeat('z', $mib), 20, 2, true)"
	);
	my $went = went(bench($session, $queue_size, $mib, 20, 2, 'pipelined'));
	my @problems;

	push @problems, "test_shm_mq_pipelined: $result->{stderr}"
	  if $result->{stderr} ne '';
	push @problems, "test_shm_mq_bench: $went" if $went ne 'by reference';
	return @problems;
}

# zero_copy_problems(), asserted: the pipeline succeeds, and the bench call
# goes by reference.
sub check_zero_copy_works
{
	my ($session, $label) = @_;

	local $Test::Builder::Level = $Test::Builder::Level + 1;

	succeeds(
		$session,
		"SELECT test_shm_mq_pipelined($queue_size, repeat('z', $mib), 20, 2, true)",
		"$label, then a zero-copy call in the same session");
	is( went(bench($session, $queue_size, $mib, 20, 2, 'pipelined')),
		'by reference',
		"$label, then a zero-copy call in the same session: it went by reference"
	);
	return;
}

# A leader's workers by number, as PIDs, once pg_stat_activity shows every
# worker of its ring: a kept ring's workers connect, and so show there, only
# as the ring goes idle after the call has returned.
sub ring_of
{
	my ($leader) = @_;

	return {
		map { ($_->{number} // '') => $_->{pid} }
		  shown_ring_workers($control, $leader) };
}

# The size of a segment named as dsm_segments() names it.
sub segment_bytes
{
	my ($name) = @_;

	return $1 if $name =~ /, (\d+) bytes\)$/;
	return -s $name // 0;
}

sub median
{
	my @sorted = sort { $a <=> $b } @_;
	return $sorted[ int($#sorted / 2) ];
}

# The leak counts of the fault tests, for the closing note.
my @leak_counts;

# Check for leftovers, as check_no_leftovers() does, and note how many
# there were: workers seen when a call returned (left_at_return, a list),
# then workers and segments left once the test was over.
sub check_and_count_leftovers
{
	my ($label, $left_at_return, %opts) = @_;

	local $Test::Builder::Level = $Test::Builder::Level + 1;

	is_deeply($left_at_return, [],
		"$label: no worker left when any call returned");
	my $left = check_no_leftovers($node, $segments_before, $label, %opts);
	my $count = sprintf(
		'%s [%s]: %d workers left at a return, then %d in pg_stat_activity, %d processes, %d segments',
		$label, dsm_choice(),
		scalar(@$left_at_return),
		scalar(@{ $left->{stat} }),
		scalar(@{ $left->{processes} }),
		scalar(@{ $left->{segments} }));
	note "leak count: $count";
	push @leak_counts, $count;
	return;
}

# The leak checks see the area's segments: a message of 65 MiB, placed once
# and sent round the ring by reference for ever, needs a segment of the
# area's own at least that large.
{
	my $size    = 65 * $mib;
	my $label   = 'leak detection, a message of 65 MiB by reference';
	my $session = zero_copy_session();
	my @large;

	$session->send(
		"SELECT test_shm_mq($queue_size, repeat('x', $size), 2000000000, 1)");
	wait_for_ring($node, $session->pid, 1);
	my $deadline = now() + $TestShmMq::SETTLE_SECONDS;
	while (1)
	{
		my $now = dsm_segments($node);
		@large = grep { segment_bytes($_) >= $size }
		  grep { !exists $segments_before->{$_} } keys %$now;
		last if @large || now() > $deadline;
		pause(0.02);
	}
	note "$label: segments of the area: @large";
	is(scalar @large, 1, "$label: the area's segment is seen");

	kill 'INT', $session->pid;
	is(outcome($session->wait_result), '57014', "$label: the call is cancelled");
	$session->close;
	check_no_leftovers($node, $segments_before, $label);
}

# 16 MiB messages through 64 KiB queues, copying and by reference.  The
# calls check what comes back against what was sent; a bench call of the
# same shape shows which way it went.
{
	my $session = zero_copy_session();

	foreach my $mode ('copying', 'zero copy')
	{
		configure($session,
			    'SET test_shm_mq_ext.zero_copy_min_bytes = '
			  . ($mode eq 'copying' ? 0 : "'$zero_copy_setting'"));
		my $way = $mode eq 'copying' ? 'copied' : 'by reference';

		foreach my $nworkers (1, 4)
		{
			my $trips = $mode eq 'copying' ? 3 : 100;
			my $label = "16 MiB, $mode, $nworkers workers";
			my $row;

			succeeds($session,
				"SELECT test_shm_mq($queue_size, body, $trips, $nworkers) FROM message",
				"$label, test_shm_mq, $trips trips");
			$row = bench($session, $queue_size, $message_bytes, $trips,
				$nworkers, 'pingpong');
			is(went($row), $way,
				"$label, test_shm_mq_bench pingpong, $trips trips: $way");
		}
		foreach my $nworkers (0, 1, 4)
		{
			my $copies = $mode eq 'copying' ? 3 : 20;
			my $label  = "16 MiB, $mode, $nworkers workers";

			succeeds($session,
				"SELECT test_shm_mq_pipelined($queue_size, body, $copies, $nworkers, true) FROM message",
				"$label, test_shm_mq_pipelined, $copies copies");

			$label .= ", test_shm_mq_bench pipelined, $copies copies";
			my $row = bench($session, $queue_size, $message_bytes, $copies,
				$nworkers, 'pipelined');
			is(went($row), $way, "$label: $way");
			next if $mode eq 'copying';
			ok( defined $row->{most}
				  && $row->{most} >= 1
				  && $row->{most} <= 2,
				"$label: one or two messages were in flight");
		}
	}

	# The threshold: a message a byte shorter is copied.
	configure($session,
		"SET test_shm_mq_ext.zero_copy_min_bytes = '$zero_copy_setting'");
	foreach my $size ($zero_copy_min - 1, $zero_copy_min)
	{
		my $label = "a message of $size bytes, threshold $zero_copy_min";

		succeeds($session,
			"SELECT test_shm_mq_pipelined($queue_size, substr(body, 1, $size), 50, 2, true) FROM message",
			$label);
		is( went(bench($session, $queue_size, $size, 50, 2, 'pipelined')),
			$size >= $zero_copy_min ? 'by reference' : 'copied',
			"$label: "
			  . ($size >= $zero_copy_min ? 'goes by reference' : 'is copied')
			  . ', as a bench call of its shape shows');
	}
	$session->close;
	check_no_leftovers($node, $segments_before, '16 MiB messages');
}

# A kept ring: call after call, of different sizes, copying or by reference,
# through the same workers.  A bench call of each call's shape follows it, on
# the same ring, and shows which way it went and how many were in flight.
# Keeping needs the extension's shared state; where there is none,
# 110_kept_ring.pl checks that nothing is kept.
if (has_shared_state($node))
{
	my $label   = 'a kept ring';
	my $session = zero_copy_session();
	my $leader  = $session->pid;
	my (@failed, @other_workers, @bad_reports);

	configure($session, 'SET test_shm_mq_ext.ring_keepalive = 60000');
	succeeds($session,
		"SELECT test_shm_mq_pipelined($queue_size, body, 5, 2, true) FROM message",
		"$label: the first call");
	my $pids = ring_of($leader);
	is(scalar keys %$pids, 2, "$label: its 2 workers are kept");

	my @sizes = ($message_bytes, 100000, $mib, $zero_copy_min, 1000);
	my $calls = 0;
	foreach my $round (1 .. 3)
	{
		foreach my $size (@sizes)
		{
			foreach my $function ('test_shm_mq', 'test_shm_mq_pipelined')
			{
				my $sql =
				  $function eq 'test_shm_mq'
				  ? "SELECT test_shm_mq($queue_size, substr(body, 1, $size), 20, 2) FROM message"
				  : "SELECT test_shm_mq_pipelined($queue_size, substr(body, 1, $size), 20, 2, true) FROM message";
				my $mode =
				  $function eq 'test_shm_mq' ? 'pingpong' : 'pipelined';
				my $result = $session->query($sql);
				my $bound  = 3 * $queue_size;

				$bound = 2 * $size if 2 * $size > $bound;
				$calls++;
				push @failed, "$sql: $result->{stderr}"
				  if $result->{stderr} ne '';
				push @other_workers, "after $sql"
				  unless eq_hash(ring_of($leader), $pids);

				my $row = bench($session, $queue_size, $size, 20, 2, $mode);
				my $went = went($row);

				$calls++;
				push @failed, "$mode bench call of $size bytes: $row->{stderr}"
				  if $row->{stderr} ne '';
				push @other_workers, "after the $mode bench call of $size bytes"
				  unless eq_hash(ring_of($leader), $pids);

				# By reference exactly when the message reaches the
				# threshold, and within the bound; one message in flight for
				# ping-pong, which sends one at a time.
				my $good =
				  $size >= $zero_copy_min
				  ? $went eq 'by reference'
				  && ($mode eq 'pipelined' || $row->{most} == 1)
				  && $row->{most} >= 1
				  && $row->{most} <= int($bound / $size)
				  : $went eq 'copied';
				push @bad_reports,
				  "$mode bench call of $size bytes: $went, at most "
				  . ($row->{most} // 'none')
				  . " in flight, bound $bound bytes"
				  unless $good;
			}
		}
	}
	is_deeply(\@failed, [], "$label: $calls calls of sizes @sizes succeed");
	is_deeply(\@other_workers, [],
		"$label: all $calls calls use the same workers");
	is_deeply(\@bad_reports, [],
		"$label: the bench calls go by reference exactly at the threshold, and stay within the bound"
	);

	# A cancel during a zero-copy call on the kept ring takes it down, its
	# area with it.
	$session->send(
		"SELECT test_shm_mq_pipelined($queue_size, repeat('x', $mib), 2000000000, 2, true)"
	);
	is_deeply(wait_for_ring($node, $leader, 2),
		$pids, "$label, cancelled: the call uses the kept ring");
	kill 'INT', $leader;
	my $result = $session->wait_result;
	is(outcome($result), '57014', "$label, cancelled: the call fails");
	check_and_count_leftovers("$label, a zero-copy call on it cancelled",
		[ workers_seen($node, $control, $leader) ]);
	check_zero_copy_works($session, "$label, cancelled");

	is($session->query('SELECT test_shm_mq_release_ring()')->{stdout},
		't', "$label: test_shm_mq_release_ring() finds the new ring");
	check_no_leftovers($node, $segments_before, "$label, released");

	# Expiry, after a call of 16 MiB messages.  Each call's area goes as the
	# call ends, so the idle ring holds none of it: no segment of a message's
	# size is left while it waits.
	# Long enough that the ring is surely still kept when first looked at, on
	# a machine busy with other work; short enough to wait out.
	my $keepalive_seconds = 2;
	configure($session,
		"SET test_shm_mq_ext.ring_keepalive = '${keepalive_seconds}s'");
	succeeds($session,
		"SELECT test_shm_mq_pipelined($queue_size, body, 5, 2, true) FROM message",
		"$label, expiring: a call of 16 MiB");
	$pids = ring_of($leader);
	is(scalar keys %$pids, 2, "$label, expiring: its workers are kept");
	is_deeply(
		[
			grep { segment_bytes($_) >= $message_bytes }
			  TestShmMq::leftover_segments($node, $segments_before)
		],
		[],
		"$label, idle: no segment of the area is left");
	my $deadline = now() + $keepalive_seconds + $TestShmMq::SETTLE_SECONDS;
	pause(0.01)
	  while (grep { !process_gone($_) } values %$pids) && now() < $deadline;
	ok(!(grep { !process_gone($_) } values %$pids),
		"$label, expiring: the workers leave");
	check_no_leftovers($node, $segments_before,
		"$label, expired, the session still idle");
	$session->close;
}

# The bound at its edge.  Each call sends enough copies that the leader
# reaches the bound, and must never go past it; test_shm_mq_bench's
# most_in_flight says how many it had out at once.
foreach my $strategy (wait_strategies($node))
{
	my $session = zero_copy_session();
	my $repeats = 5;

	$session->set_wait_strategy($strategy);

	# Message size => the most in flight with 64 KiB queues and 4 workers,
	# whose bound is 5 queues (320 KiB) or two messages.
	my %edges = (
		81920    => 4,
		81921    => 3,
		163840   => 2,
		163841   => 2,
		$mib     => 2,);
	foreach my $size (sort { $a <=> $b } keys %edges)
	{
		my $label = "$strategy wait, messages of $size bytes, 4 workers";
		my (@most, @failed);

		foreach (1 .. $repeats)
		{
			my $row = bench($session, $queue_size, $size, 300, 4, 'pipelined',
				$strategy);
			my $went = went($row);

			push @failed, $went if $went ne 'by reference';
			push @most, $row->{most} if defined $row->{most};
		}
		my $verified = $session->query(
			"SELECT test_shm_mq_pipelined($queue_size, repeat('x', $size), 300, 4, true)"
		);
		push @failed, "test_shm_mq_pipelined: $verified->{stderr}"
		  if $verified->{stderr} ne '';
		note "$label [" . dsm_choice() . "]: at most @most in flight";
		is_deeply(\@failed, [],
			"$label: test_shm_mq_pipelined and $repeats bench calls succeed, the bench calls by reference"
		);
		is_deeply([ grep { $_ > $edges{$size} } @most ],
			[], "$label: never more than $edges{$size} in flight");
		is((sort { $b <=> $a } @most)[0],
			$edges{$size}, "$label: $edges{$size} in flight at the most");
	}

	# One-byte messages: the bound in bytes would allow 5 MiB of them; the
	# pipeline stops at 65536.  Only batching reaches that reliably.
	{
		my $label = "$strategy wait, messages of 1 byte, 1 MiB queues, 4 workers";

		configure($session, 'SET test_shm_mq_ext.zero_copy_min_bytes = 1');
		succeeds($session,
			"SELECT test_shm_mq_pipelined($mib, 'x', 200000, 4, true)", $label);
		my $row = bench($session, $mib, 1, 200000, 4, 'pipelined', $strategy);
		configure($session,
			"SET test_shm_mq_ext.zero_copy_min_bytes = '$zero_copy_setting'");
		is(went($row), 'by reference',
			"$label: a bench call of its shape goes by reference");
		my $most = $row->{most} // -1;
		note "$label [" . dsm_choice() . "]: at most $most in flight";
		cmp_ok($most, '<=', $max_references,
			"$label: never more than $max_references in flight");
		cmp_ok($most, '>=', 1, "$label: some in flight");
		is($most, $max_references,
			"$label: $max_references in flight at the most")
		  if $strategy eq 'adaptive';
	}
	$session->close;
}
check_no_leftovers($node, $segments_before, 'the bound');

# The faults, in one session, which must go on working after each.
my $session = zero_copy_session();
my $leader  = $session->pid;

# statement_timeout firing mid-pipeline: after the ring is up, whatever the
# message's size.
{
	my $label = "statement_timeout mid-pipeline, $timeout_calls calls";
	my (%outcomes, @left, @setup, @timeouts, @after);

	# How long a ring of 4 takes to come up and send one message.
	foreach (1 .. 5)
	{
		my $result = $session->query(
			"SELECT test_shm_mq_pipelined($queue_size, repeat('x', $mib), 1, 4, true)"
		);
		push @setup, $result->{done_at} - $result->{sent_at};
	}
	my $setup_ms = 1000 * median(@setup);

	foreach my $call (1 .. $timeout_calls)
	{
		my $size = (100000, $mib, $message_bytes)[ $call % 3 ];
		my $timeout_ms = int(3 * $setup_ms + 20 + rand(100));

		push @timeouts, $timeout_ms;
		configure($session, "SET statement_timeout = $timeout_ms");
		my $result = $session->query(
			"SELECT test_shm_mq_pipelined($queue_size, repeat('x', $size), 1000000, 4, true)"
		);
		configure($session, 'RESET statement_timeout');
		my $error = parse_error($result->{stderr}) // {};
		my $outcome = outcome($result);
		$outcome .= ": $error->{message}"
		  if defined $error->{message}
		  && $error->{message} ne
		  'canceling statement due to statement timeout';
		$outcomes{$outcome}++;
		push @left, map { "after call $call ($outcome): $_" }
		  workers_seen($node, $control, $leader);

		push @after, map { "after call $call: $_" }
		  zero_copy_problems($session);
	}
	note sprintf(
		'%s [%s]: a ring of 4 comes up and sends in %.1f ms; timeouts %d to %d ms; outcomes %s',
		$label, dsm_choice(), $setup_ms,
		(sort { $a <=> $b } @timeouts)[ 0, -1 ],
		join(', ', map { "$_: $outcomes{$_}" } sort keys %outcomes));
	is_deeply(\%outcomes, { 57014 => $timeout_calls },
		"$label: every call times out");
	is_deeply(\@after, [],
		"$label: each time, the same session's next zero-copy call succeeds");
	check_and_count_leftovers($label, \@left);
}

# Cancels at random moments of zero-copy calls, ping-pong and pipelined,
# through SIGINT and pg_cancel_backend in turn.  A cancel that comes after
# the call returned finds the session idle and is ignored.
{
	my $label = "cancels at random moments, $cancel_calls calls";
	my %calls = (
		test_shm_mq =>
		  "SELECT test_shm_mq($queue_size, repeat('x', $mib), 2000, 4)",
		test_shm_mq_pipelined =>
		  "SELECT test_shm_mq_pipelined($queue_size, repeat('x', $mib), 2000, 4, true)"
	);
	my (%outcomes, @left, @after, %span);

	foreach my $function (sort keys %calls)
	{
		my @durations;

		foreach (1 .. 3)
		{
			my $result = $session->query($calls{$function});
			is($result->{stderr}, '',
				"$label: an uncancelled $function call succeeds");
			push @durations, $result->{done_at} - $result->{sent_at};
		}
		$span{$function} = 1.2 * median(@durations);
		note sprintf('%s [%s]: %s takes %.1f ms',
			$label, dsm_choice(), $function, 1000 * median(@durations));
	}

	foreach my $call (1 .. $cancel_calls)
	{
		my $function = $call % 2 ? 'test_shm_mq' : 'test_shm_mq_pipelined';
		my $how      = $call % 4 < 2 ? 'SIGINT' : 'pg_cancel_backend';

		$session->send($calls{$function});
		pause(rand($span{$function}));
		if ($how eq 'SIGINT')
		{
			kill 'INT', $leader;
		}
		else
		{
			$control->query("SELECT pg_cancel_backend($leader)");
		}
		my $result  = $session->wait_result;
		my $outcome = outcome($result);

		$outcomes{"$function, $how: $outcome"}++;
		push @left, map { "after call $call ($outcome): $_" }
		  workers_seen($node, $control, $leader);

		push @after, map { "after call $call: $_" }
		  zero_copy_problems($session);
	}
	note "$label [" . dsm_choice() . ']: outcomes '
	  . join(', ', map { "$_: $outcomes{$_}" } sort keys %outcomes);
	is_deeply([ grep { !/: (?:57014|ok)$/ } keys %outcomes ],
		[], "$label: every call was cancelled or succeeded");
	my $cancelled = 0;
	$cancelled += $outcomes{$_} foreach grep { /: 57014$/ } keys %outcomes;
	cmp_ok($cancelled, '>=', $cancel_calls / 4,
		"$label: many calls were cancelled");
	is_deeply(\@after, [],
		"$label: each time, the same session's next zero-copy call succeeds");
	check_and_count_leftovers($label, \@left);
}

# A worker terminated while the ring holds references, as 010_worker_errors.pl
# does it to copying calls: the call fails with the worker's own error.
foreach my $case (
	[ 'test_shm_mq_pipelined', 1 ],
	[ 'test_shm_mq_pipelined', 2 ],
	[ 'test_shm_mq_pipelined', 4 ],
	[ 'test_shm_mq',           1 ],
	[ 'test_shm_mq',           4 ],)
{
	my ($function, $victim) = @$case;
	my $label = "$function by reference, worker $victim of 4 terminated";
	my $sql =
	  $function eq 'test_shm_mq'
	  ? "SELECT test_shm_mq($queue_size, repeat('x', $mib), 2000000000, 4)"
	  : "SELECT test_shm_mq_pipelined($queue_size, repeat('x', $mib), 2000000000, 4, true)";

	$session->send($sql);
	my $workers  = wait_for_ring($node, $leader, 4);
	my $fault_at = now();
	is($control->query("SELECT pg_terminate_backend($workers->{$victim})")
		  ->{stdout},
		't', "$label: pg_terminate_backend succeeded");
	my $result = $session->wait_result;
	my $error  = parse_error($result->{stderr}) // {};

	ok($result->{finished}, "$label: the call ended");
	is($error->{severity}, 'ERROR',  "$label: the caller gets an ERROR");
	is($error->{sqlstate}, '57P01', "$label: SQLSTATE 57P01");
	is( $error->{message},
		'terminating background worker "test_shm_mq_ext" due to administrator command',
		"$label: the worker's own message");
	is( $error->{context},
		"test_shm_mq_ext worker $victim of 4, PID $workers->{$victim}",
		"$label: the context names the worker and its PID");
	check_time_to_error($label, $fault_at, $result->{error_at});
	check_and_count_leftovers($label,
		[ workers_seen($node, $control, $leader) ]);
	check_zero_copy_works($session, $label);
}

# The leader terminated mid-pipeline, and at random moments of a call's
# start: it exits, its workers with it, and leaves no segment.
{
	my $label = 'the leader terminated';
	my (@left, @outcomes);

	foreach my $call (1 .. $terminate_calls)
	{
		my $mid      = $call <= $terminate_calls / 2;
		my $victim   = zero_copy_session();
		my $pid      = $victim->pid;
		my $what     = $mid ? 'mid-pipeline' : 'at a random moment';
		my $workers  = {};

		$victim->send(
			"SELECT test_shm_mq_pipelined($queue_size, repeat('x', $mib), 2000000000, 4, true)"
		);
		if ($mid)
		{
			$workers = wait_for_ring($node, $pid, 4);
		}
		else
		{
			pause(rand(0.03));
		}
		my $fault_at = now();
		$control->query("SELECT pg_terminate_backend($pid)");
		my $result = $victim->wait_result;
		my $error = parse_error($result->{stderr}) // {};

		push @outcomes,
		  "$what: "
		  . ($error->{severity} // 'no error') . ' '
		  . ($error->{sqlstate} // '') . ' '
		  . ($error->{message} // '');
		check_processes_exit("$label $what, call $call",
			$fault_at, $pid, values %$workers);
		push @left, map { "after call $call: $_" }
		  workers_seen($node, $control, $pid);
		$victim->close;
	}
	is_deeply(
		\@outcomes,
		[   map {
				($_ <= $terminate_calls / 2 ? 'mid-pipeline' : 'at a random moment')
				  . ': FATAL 57P01 terminating connection due to administrator command'
			} 1 .. $terminate_calls
		],
		"$label: each session ends with FATAL 57P01");
	check_and_count_leftovers("$label, $terminate_calls times", \@left);
	my $next = zero_copy_session();
	check_zero_copy_works($next,
		"$label, in a new session (the old one is gone)");
	$next->close;
}

# An area that cannot grow, with nothing in flight: the dynamic shared memory
# layer's own error (53200 for a file too large), with a context line naming
# the message's size.  The postmaster's file
# size limit, which every process it starts from then on inherits, makes
# creating a segment larger than 48 MiB fail; System V segments are not
# files, so there this cannot be arranged.
if (dsm_type() ne 'sysv')
{
	my $label = 'a segment the area cannot get';
	my $limit = 48 * $mib;
	my $pm    = TestShmMq::postmaster_pid($node);

	system('prlimit', "--pid=$pm", "--fsize=$limit:") == 0
	  or die "prlimit failed";
	my $limited = zero_copy_session();
	my $result  = $limited->query(
		"SELECT test_shm_mq($queue_size, repeat('x', 64 * $mib), 2, 2)");
	my $error = parse_error($result->{stderr}) // {};
	is($error->{sqlstate} // 'none', '53200', "$label: fails with 53200");
	like(
		$result->{stderr},
		qr/ERROR:  53200: could not resize shared memory segment "[^"]+" to \d+ bytes: File too large\nCONTEXT:  allocating room for messages of 67108864 bytes in the ring's shared memory area/,
		"$label: says the size, and why");
	check_and_count_leftovers($label,
		[ workers_seen($node, $control, $limited->pid) ]);
	check_zero_copy_works($limited, "$label, a smaller message");
	$limited->close;
	system('prlimit', "--pid=$pm", '--fsize=unlimited:') == 0
	  or die "prlimit failed";
}

$session->close;
$control->close;
check_no_leftovers($node, $segments_before, 'end');
note "the fault tests' leak counts [" . dsm_choice() . "]:\n"
  . join("\n", @leak_counts);
$node->stop;
done_testing();
