// expect: 2554@2
const w = await external_getWeather('Oslo', 'metric');
return w;
