// expect: ok
const [a, b] = await Promise.all([external_getWeather({ city: 'Oslo' }), external_getWeather({ city: 'Rome' })]);
return b.tempC - a.tempC;
