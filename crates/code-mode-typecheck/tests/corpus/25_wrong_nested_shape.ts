// expect: 2322@2
const sent = await external_sendEmail({ to: 'ops@example.com', subject: 'Hi', body: 'x' });
return sent.id;
