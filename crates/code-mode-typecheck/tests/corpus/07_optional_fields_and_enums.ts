// expect: ok
const sent = await external_sendEmail({ to: ['ops@example.com'], subject: 'Low stock', body: 'See report', priority: 'high' });
const again = await external_sendEmail({ to: [], subject: 'x', body: 'y' });
return [sent.id, again.queued];
