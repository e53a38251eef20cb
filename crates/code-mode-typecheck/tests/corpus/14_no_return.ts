// expect: ok
const w = await external_getWeather({ city: 'Paris' });
console.log('weather', w);
