// expect: 2304@3
const w = await external_getWeather({ city: 'Oslo' });
const f = await external_getForecast({ city: 'Oslo', days: 3 });
return [w, f];
